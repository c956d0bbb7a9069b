import { expect } from 'chai';
import sinon from 'sinon';
import { HostLimiter } from '../src/common/host-limiter.ts';
import type { TriggerLogger } from '../src/sdk/trigger.ts';
import { HttpPollError, HttpPollTrigger, MAX_PAYLOAD_BYTES, type HttpPollTriggerKwargs } from '../triggers/index.ts';
import { eventually } from './support/events.ts';
import { inTurn, ScriptedServer } from './support/http-server.ts';

const SECRET = 'Bearer s3cret-token-value';

/** A logger that keeps every line, to check what would be written. */
function recordingLogger(): TriggerLogger & { lines: { level: string; message: string; fields: object }[] } {
  const lines: { level: string; message: string; fields: object }[] = [];
  const at = (level: string) => (fields: object, message: string) => void lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn') };
}

const run = (trigger: HttpPollTrigger, signal = new AbortController().signal) => trigger.run(signal);

describe('HttpPollTrigger, against a real HTTP server', () => {
  let server: ScriptedServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('keeps polling through 503 and 404, and fires on the 200 whose JSON field has the expected value', async () => {
    server = await ScriptedServer.start(
      inTurn(
        [{ status: 503, body: 'warming up', headers: { 'retry-after': '0' } }, { status: 404, body: 'no such job yet' }, { status: 200, body: { state: 'running' } }],
        { status: 200, body: { state: 'done', rows: 42 }, headers: { etag: '"v7"', 'x-internal': 'not reported' } },
      ),
    );
    const log = recordingLogger();
    const trigger = new HttpPollTrigger({
      url: server.url('/jobs/7?token=query-secret'),
      headers: { Authorization: SECRET },
      pollInterval: 0.02,
      expect: { json: { path: 'state', equals: 'done' } },
    }).useLogger(log);
    const event = await run(trigger);
    expect(event?.payload).to.deep.equal({
      status: 200,
      headers: { 'content-type': 'application/json', etag: '"v7"' },
      body: { state: 'done', rows: 42 },
      bodyTruncated: false,
    });
    expect(server.requests.map((r) => r.url)).to.deep.equal(Array(4).fill('/jobs/7?token=query-secret'));
    expect(server.requests[0]?.headers['authorization'], 'the header is sent').to.equal(SECRET);
    expect(log.lines.map((l) => [l.level, (l.fields as { status?: number }).status])).to.deep.equal([
      ['warn', 503],
      ['info', 404],
      ['info', 200],
    ]);
    const written = JSON.stringify(log.lines);
    expect(written).not.to.contain('s3cret');
    expect(written).not.to.contain('query-secret');
  });

  it('fails on a 4xx it does not wait on, with the status and a body excerpt but no header value', async () => {
    server = await ScriptedServer.start(inTurn([{ status: 503 }], { status: 401, body: { error: 'token expired' } }));
    const trigger = new HttpPollTrigger({ url: server.url('/status'), headers: { Authorization: SECRET }, pollInterval: 0.02 });
    const error = await run(trigger).then(
      () => expect.fail('the trigger fired'),
      (e: unknown) => e as HttpPollError,
    );
    expect(error).to.be.instanceOf(HttpPollError);
    expect(error.status).to.equal(401);
    expect(error.message).to.contain(`GET ${server.url('/status')} answered 401 Unauthorized: {"error":"token expired"}`);
    expect(error.message).to.contain('list 401 in expect.keepPollingOn');
    expect(error.message).not.to.contain('s3cret');
  });

  it('waits on the statuses the expectation names: 404 can be the goal, and keepPollingOn: [] fails on 404', async () => {
    server = await ScriptedServer.start(inTurn([{ status: 200, body: 'still there' }], { status: 404 }));
    const gone = await run(new HttpPollTrigger({ url: server.url('/old'), method: 'DELETE', pollInterval: 0.02, expect: { status: [404] } }));
    expect(gone?.payload).to.include({ status: 404 });
    expect(server.requests.map((r) => r.method)).to.deep.equal(['DELETE', 'DELETE']);
    const strict = new HttpPollTrigger({ url: server.url('/old'), pollInterval: 0.02, expect: { keepPollingOn: [] } });
    await run(strict).then(
      () => expect.fail('fired'),
      (e: unknown) => expect(String(e)).to.contain('answered 404'),
    );
  });

  it('matches a substring of the body and sends a JSON body with its content type', async () => {
    server = await ScriptedServer.start((n) => ({ status: 200, body: n < 2 ? 'state=PENDING' : 'state=SUCCEEDED' }));
    const event = await run(
      new HttpPollTrigger({ url: server.url('/q'), method: 'post', body: { query: 'status' }, pollInterval: 0.02, expect: { bodyContains: 'SUCCEEDED' } }),
    );
    expect(event?.payload).to.include({ status: 200, body: 'state=SUCCEEDED' });
    expect(server.requests[0]).to.include({ method: 'POST', body: '{"query":"status"}' });
    expect(server.requests[0]?.headers['content-type']).to.equal('application/json');
  });

  it('treats a refused connection and a request timeout as transient', async () => {
    server = await ScriptedServer.start(() => ({ status: 200 }));
    const port = server.port;
    await server.close();
    const log = recordingLogger();
    const trigger = new HttpPollTrigger({ url: `http://127.0.0.1:${port}/health`, pollInterval: 0.05, requestTimeout: 0.3 }).useLogger(log);
    const event = run(trigger);
    await eventually(async () => log.lines.length > 0, 'the first failed poll to be logged');
    expect(log.lines[0]).to.deep.include({ level: 'warn' });
    expect(log.lines[0]?.fields).to.include({ reason: 'ECONNREFUSED' });
    // The service comes up on the same port; its first request hangs past requestTimeout.
    server = await ScriptedServer.start(inTurn([{ status: 200, hang: true }], { status: 200, body: 'ok' }), port);
    expect((await event)?.payload).to.include({ status: 200, body: 'ok' });
    expect(log.lines.some((l) => (l.fields as { reason?: string }).reason === 'no answer within 0.3 s')).to.equal(true);
  });

  it('caps the body it reads and reports', async () => {
    const big = 'x'.repeat(2 * 1024 * 1024);
    server = await ScriptedServer.start(() => ({ status: 200, body: big }));
    const event = await run(new HttpPollTrigger({ url: server.url('/big') }));
    const payload = event?.payload as { body: string; bodyTruncated: boolean };
    expect(payload.bodyTruncated).to.equal(true);
    expect(payload.body.length).to.equal(MAX_PAYLOAD_BYTES);
  });

  it('bounds the requests in flight per host, whatever the number of triggers', async () => {
    server = await ScriptedServer.start((n) => (n < 20 ? { status: 503, delayMs: 30 } : { status: 200, delayMs: 30, body: 'ok' }));
    const limiter = new HostLimiter(2);
    const url = server.url('/shared');
    const events = await Promise.all(
      Array.from({ length: 10 }, () => run(new HttpPollTrigger({ url, pollInterval: 0.01 }, { limiter }))),
    );
    expect(events.every((e) => e?.payload.status === 200)).to.equal(true);
    expect(server.requests.length).to.be.at.least(20);
    expect(server.maxInFlight).to.equal(2);
    expect(limiter.load(new URL(url).host)).to.deep.equal({ running: 0, waiting: 0 });
  });

  it('drops a queued request when cancelled, without sending it', async () => {
    server = await ScriptedServer.start(() => ({ status: 200, hang: true }));
    const limiter = new HostLimiter(1);
    const url = server.url('/slow');
    const first = new AbortController();
    const second = new AbortController();
    const a = run(new HttpPollTrigger({ url }, { limiter }), first.signal);
    const b = run(new HttpPollTrigger({ url }, { limiter }), second.signal);
    await eventually(async () => server!.requests.length > 0, 'the first request to arrive');
    expect(limiter.load(new URL(url).host)).to.deep.equal({ running: 1, waiting: 1 });
    second.abort();
    expect(await b).to.equal(undefined);
    first.abort();
    expect(await a).to.equal(undefined);
    expect(server.requests).to.have.length(1);
  });

  describe('with a fake clock', () => {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      clock = sinon.useFakeTimers({ now: Date.parse('2026-03-01T12:00:00Z'), toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    });
    afterEach(() => clock.restore());

    it('polls again no sooner than a Retry-After says, then fires on any 2xx by default', async () => {
      const answers = [new Response('', { status: 429, headers: { 'retry-after': '30' } }), new Response('', { status: 202 })];
      const calls: number[] = [];
      const fetchStub = (async () => {
        calls.push(Date.now());
        return answers.shift() ?? new Response('{"ok":true}', { status: 200, headers: { 'content-type': 'application/json' } });
      }) as typeof fetch;
      const trigger = new HttpPollTrigger({ url: 'https://api.example.test/ready', pollInterval: 5 }, { fetch: fetchStub, limiter: new HostLimiter(1) });
      let payload: unknown;
      void run(trigger).then((e) => (payload = e?.payload));
      await clock.tickAsync(0);
      expect(calls).to.have.length(1);
      await clock.tickAsync(29_999);
      expect(calls, 'Retry-After: 30 holds the next poll back').to.have.length(1);
      await clock.tickAsync(1);
      expect(calls).to.have.length(2);
      await clock.tickAsync(5_000);
      expect(calls.map((t) => t - Date.parse('2026-03-01T12:00:00Z'))).to.deep.equal([0, 30_000]);
      expect(payload).to.deep.equal({ status: 202, headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: '', bodyTruncated: false });
    });

    it('waits pollInterval after a 202 when the expectation asks for 200', async () => {
      const statuses = [202, 202, 200];
      const calls: number[] = [];
      const fetchStub = (async () => {
        calls.push(Date.now());
        return new Response('done', { status: statuses.shift() ?? 200 });
      }) as typeof fetch;
      const start = Date.now();
      const trigger = new HttpPollTrigger({ url: 'https://api.example.test/job', pollInterval: 5, expect: { status: [200] } }, { fetch: fetchStub, limiter: new HostLimiter(1) });
      let fired = false;
      void run(trigger).then(() => (fired = true));
      await clock.tickAsync(9_999);
      expect(fired).to.equal(false);
      await clock.tickAsync(1);
      expect(fired).to.equal(true);
      expect(calls.map((t) => t - start)).to.deep.equal([0, 5_000, 10_000]);
    });
  });

  it('survives serialize() → constructor, with durations stored in seconds', () => {
    const trigger = new HttpPollTrigger({
      url: 'https://api.example.test/v1/jobs/1',
      method: 'get',
      headers: { Authorization: SECRET },
      pollInterval: { minutes: 1 },
      requestTimeout: 'PT10S',
      expect: { status: [200, 201], json: [{ path: 'a.b', equals: [1, 2] }] },
    });
    const [classpath, kwargs] = trigger.serialize();
    expect(classpath).to.equal('tsflow.triggers.HttpPollTrigger');
    expect(kwargs).to.deep.include({ method: 'GET', pollInterval: 60, requestTimeout: 10, body: null });
    expect(new HttpPollTrigger(kwargs as never).serialize()).to.deep.equal([classpath, kwargs]);
  });

  it('refuses bad kwargs at construction, naming the field and never echoing a header value', () => {
    const make = (kwargs: Partial<HttpPollTriggerKwargs> & Record<string, unknown>) => () => new HttpPollTrigger(kwargs as HttpPollTriggerKwargs);
    expect(make({ url: 'not a url' })).to.throw(/HttpPollTrigger url 'not a url' is not a valid URL/);
    expect(make({})).to.throw(/HttpPollTrigger needs url \(an http:\/\/ or https:\/\/ URL\) or httpConnId/);
    expect(make({ url: 'https://x.test', httpConnId: 'api' })).to.throw(/HttpPollTrigger takes url or httpConnId, not both/);
    expect(make({ endpoint: '/x' })).to.throw(/HttpPollTrigger endpoint needs httpConnId/);
    expect(make({ httpConnId: 'api', endpoint: 'https://elsewhere.test/x' })).to.throw(/endpoint must be a path after the connection's base URL/);
    expect(make({ httpConnId: 'bad id!' })).to.throw(/httpConnId must be a connection id/);
    expect(make({ url: 'ftp://files.example.test/x' })).to.throw(/HttpPollTrigger url must use http:\/\/ or https:\/\/, got ftp:/);
    expect(make({ url: 'https://x.test', method: 'FETCH' as never })).to.throw(/HttpPollTrigger method must be one of GET/);
    expect(make({ url: 'https://x.test', body: { a: 1 } })).to.throw(/HttpPollTrigger body cannot be sent with GET/);
    expect(make({ url: 'https://x.test', pollInterval: -1 })).to.throw(/HttpPollTrigger pollInterval must not be negative/);
    expect(make({ url: 'https://x.test', requestTimeout: 0 })).to.throw(/HttpPollTrigger requestTimeout must be more than 0 seconds/);
    expect(make({ url: 'https://x.test', expect: { statuses: [200] } as never })).to.throw(/HttpPollTrigger expect has no field 'statuses'/);
    expect(make({ url: 'https://x.test', expect: { keepPollingOn: [503] } })).to.throw(/HttpPollTrigger expect.keepPollingOn lists 4xx codes only/);
    expect(make({ url: 'https://x.test', expect: { json: { path: '', equals: 1 } } })).to.throw(/HttpPollTrigger expect.json must be \{ path/);
    const badHeader = make({ url: 'https://x.test', headers: { Authorization: 'Bearer abc\r\nX-Injected: 1' } });
    expect(badHeader).to.throw(/HttpPollTrigger headers\['Authorization'\] is not a valid header/);
    expect(badHeader).to.throw().with.property('message').that.does.not.contain('Bearer abc');
  });
});
