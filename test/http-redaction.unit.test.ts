import { expect } from 'chai';
import { HostLimiter } from '../src/common/host-limiter.ts';
import { redactor, redactUrl, redactUrlsInText } from '../src/common/redact-url.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { HttpPollError, HttpPollTrigger } from '../triggers/index.ts';
import { ScriptedServer } from './support/http-server.ts';
import { captureLogs, untilTurns } from './support/unit.ts';

const SECRET = 'SECRET-q-9931';

describe('redacting HTTP URLs', () => {
  it('redactUrl keeps scheme, host, port and path; drops userinfo, query and fragment', () => {
    expect(redactUrl('http://user:PASS@host.example:8080/job/7?token=SECRET#frag')).to.equal('http://host.example:8080/job/7');
    expect(redactUrl(new URL('https://api.example/v1/items?api_key=k'))).to.equal('https://api.example/v1/items');
    expect(redactUrl('https://host.example')).to.equal('https://host.example/');
    expect(redactUrl('not a url user:PASS@x?token=SECRET'), 'text URL cannot parse is cut the same way').to.equal('x');
  });

  it('redacts every URL inside a text, and a redactor blanks out the given values', () => {
    const text = `fetch failed: Request cannot be constructed from a URL that includes credentials: http://u:PASS@h:1/p?token=${SECRET}. Body said ${SECRET}`;
    expect(redactUrlsInText(text)).to.equal(`fetch failed: Request cannot be constructed from a URL that includes credentials: http://h:1/p Body said ${SECRET}`); // the query took the period with it
    expect(redactor([SECRET, 'ab'])(text)).to.equal('fetch failed: Request cannot be constructed from a URL that includes credentials: http://h:1/p Body said [redacted]');
  });
});

describe('HttpPollTrigger never shows credentials or a query string', () => {
  let server: ScriptedServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('refuses a URL with user:password@ at construction, naming the field and not the password', () => {
    for (const url of ['http://admin:Hunter2-pw@host.example/job?token=abc', 'https://tok3n-as-user@host.example/']) {
      let error: unknown;
      try {
        new HttpPollTrigger({ url });
      } catch (e) {
        error = e;
      }
      expect(error, url).to.be.instanceOf(InvalidTriggerKwargsError);
      const message = (error as Error).message;
      expect(message).to.match(/^HttpPollTrigger url https?:\/\/host\.example\/(job)? holds credentials \(user:password@\): .*pass credentials in headers/);
      for (const secret of ['admin', 'Hunter2-pw', 'tok3n-as-user', 'abc']) expect(message).not.to.contain(secret);
    }
  });

  it('does not echo an invalid URL whole', () => {
    expect(() => new HttpPollTrigger({ url: 'user:Hunter2-pw@ host?token=abc' })).to.throw(InvalidTriggerKwargsError).that.satisfies((e: Error) => !/Hunter2|abc/.test(e.message));
  });

  it('keeps a query string allowed: it is sent, but a failing poll shows it neither in the error nor in the log', async () => {
    server = await ScriptedServer.start((n, request) =>
      n === 0 ? { status: 503, body: `busy ${request.url}` } : { status: 403, body: `token ${SECRET} refused for http://127.0.0.1${request.url}` },
    );
    const { logger, text } = captureLogs();
    const trigger = new HttpPollTrigger({ url: server.url(`/job?token=${SECRET}`), pollInterval: 0.01, headers: { 'X-Api-Key': 'header-value-777' } }).useLogger(logger);
    const error = await trigger.run(new AbortController().signal).then(
      () => expect.fail('the trigger fired'),
      (e: unknown) => e as HttpPollError,
    );
    expect(server.requests[0]?.url, 'the query is sent').to.equal(`/job?token=${SECRET}`);
    expect(error).to.be.instanceOf(HttpPollError);
    expect(error.message).to.contain(`GET ${server.url('/job')} answered 403 Forbidden: token [redacted] refused for http://127.0.0.1/job —`);
    expect(text()).to.contain('answered 503');
    for (const shown of [error.message, text()]) {
      expect(shown).not.to.contain(SECRET);
      expect(shown).not.to.contain('token=');
      expect(shown).not.to.contain('header-value-777');
    }
  });

  it('redacts a fetch error that quotes the URL (a redirect to a URL with credentials, a refused request)', async () => {
    const { logger, lines, text } = captureLogs();
    const fetchThatQuotes: typeof fetch = async (input) => {
      throw new TypeError('fetch failed', { cause: new Error(`redirect to http://u:pw-${SECRET}@elsewhere/x?token=${SECRET} refused, from ${String(input)}`) });
    };
    const trigger = new HttpPollTrigger(
      { url: `http://127.0.0.1:9/job?token=${SECRET}`, pollInterval: 3600 },
      { fetch: fetchThatQuotes, limiter: new HostLimiter(1) },
    ).useLogger(logger);
    const stop = new AbortController();
    const running = trigger.run(stop.signal);
    await untilTurns(() => lines.length > 0, 'the failed poll to be logged');
    stop.abort();
    await running;
    expect(lines[0]).to.include({ url: 'http://127.0.0.1:9/job' });
    expect(String(lines[0]?.['reason'])).to.equal('redirect to http://elsewhere/x refused, from http://127.0.0.1:9/job');
    expect(text()).not.to.contain(SECRET);
  });
});
