import { expect } from 'chai';
import { pino } from 'pino';
import { maskingStream } from '../src/common/logger.ts';
import { maskSecret } from '../src/secrets/masker.ts';
import { installOutputMasking } from '../src/cli/output-masking.ts';

describe('secrets: masking in log lines and CLI output', () => {
  it("masks a registered secret anywhere in a daemon's log line: message, fields, error stack", () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, maskingStream({ write: (line: string) => lines.push(line) }));
    maskSecret('daemon-secret-7731');
    log.info({ dsn: 'postgres://u:daemon-secret-7731@db/x', nested: { note: 'with daemon-secret-7731 inside' } }, 'connecting with daemon-secret-7731');
    log.error({ err: new Error('refused: daemon-secret-7731') }, 'failed');
    expect(lines.join('')).not.to.contain('daemon-secret-7731');
    const first = JSON.parse(lines[0]!) as { msg: string; dsn: string; nested: { note: string } };
    expect(first).to.deep.include({ msg: 'connecting with ***', dsn: 'postgres://u:***@db/x', nested: { note: 'with *** inside' } });
    expect((JSON.parse(lines[1]!) as { err: { stack: string } }).err.stack).to.contain('refused: ***');
  });

  it("masks what the CLI writes to stdout", () => {
    installOutputMasking();
    maskSecret('cli-output-secret-55');
    const written: string[] = [];
    // Below the masking wrapper: capture what reaches the real stream.
    const inner = (process.stdout as unknown as { _write: typeof process.stdout._write })._write;
    (process.stdout as unknown as { _write: typeof process.stdout._write })._write = (chunk, _enc, cb) => {
      written.push(Buffer.from(chunk as Buffer).toString());
      cb();
    };
    try {
      process.stdout.write('value: cli-output-secret-55\n');
    } finally {
      (process.stdout as unknown as { _write: typeof process.stdout._write })._write = inner;
    }
    expect(written.join('')).to.equal('value: ***\n');
  });
});
