import { UsageError } from './settings.ts';

/**
 * A password for `tsflow users create`: typed at a terminal without echo (asked twice), or read
 * from stdin when it is piped (its first line). An empty password is refused.
 */
export async function readPassword(prompt = 'Password: '): Promise<string> {
  const password = process.stdin.isTTY ? await promptTwice(prompt) : await firstLineOfStdin();
  if (password === '') throw new UsageError('the password is empty: type one, or pipe it on stdin (echo "$PASSWORD" | tsflow users create ...)');
  return password;
}

async function promptTwice(prompt: string): Promise<string> {
  const first = await promptHidden(prompt);
  if (first === '') return first;
  const second = await promptHidden('Repeat it: ');
  if (first !== second) throw new UsageError('the two passwords differ: run the command again');
  return first;
}

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let value = '';
    const done = (error?: Error): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string): void => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n' || char === '\u0004') return done();
        if (char === '\u0003') return done(new UsageError('cancelled'));
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else value += char;
      }
    };
    stdin.on('data', onData);
  });
}

async function firstLineOfStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text.split(/\r?\n/)[0] ?? '';
}
