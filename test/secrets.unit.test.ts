import { expect } from 'chai';
import { decodeTriggerKwargs, encodeTriggerKwargs, TriggerKwargsDecodeError } from '../src/db/trigger-kwargs.ts';
import { connectionToUri, InvalidConnectionError, parseConnectionUri } from '../src/secrets/connection.ts';
import { connectionFromEnvironment, environmentConnection } from '../src/secrets/env-secrets.ts';
import { DecryptionError, generateSecretKey, Keyring, SecretKeyError } from '../src/secrets/keyring.ts';
import { isSensitiveName, MASK, SecretMasker } from '../src/secrets/masker.ts';
import { currentKeyring, installKeyring, NoSecretKeyError, requireKeyring } from '../src/secrets/process-keyring.ts';
import { connectionTarget } from '../triggers/http-poll-trigger.ts';

describe('secrets: the keyring (AES-256-GCM envelopes)', () => {
  const oldKey = generateSecretKey();
  const newKey = generateSecretKey();

  it('round-trips a value, and the envelope holds no plaintext', () => {
    const keyring = Keyring.parse(oldKey, 'TSFLOW_SECRET_KEY');
    const envelope = keyring.encrypt('hunter2-password');
    expect(envelope).to.match(/^v1:[0-9a-f]{8}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/);
    expect(envelope).not.to.contain('hunter2');
    expect(keyring.decrypt(envelope, 'x')).to.equal('hunter2-password');
    expect(keyring.encrypt('hunter2-password')).not.to.equal(envelope); // a fresh IV each time
  });

  it('encrypts with the first key and decrypts with any: a rotated keyring still reads old values', () => {
    const before = Keyring.parse(oldKey, 'TSFLOW_SECRET_KEY');
    const stored = before.encrypt('value');
    const rotated = Keyring.parse(`${newKey},${oldKey}`, 'TSFLOW_SECRET_KEY');
    expect(rotated.decrypt(stored, 'x')).to.equal('value');
    expect(rotated.isCurrent(stored)).to.equal(false);
    expect(rotated.isCurrent(rotated.encrypt('value'))).to.equal(true);
    expect(rotated.primaryKeyId).to.equal(Keyring.parse(newKey, 'k').primaryKeyId);
  });

  it('names the key a value needs when that key is no longer configured', () => {
    const old = Keyring.parse(oldKey, 'TSFLOW_SECRET_KEY');
    const stored = old.encrypt('value');
    const only = Keyring.parse(newKey, 'TSFLOW_SECRET_KEY');
    expect(() => only.decrypt(stored, "the password of connection 'db'"))
      .to.throw(DecryptionError)
      .with.property('message')
      .that.contains(`encrypted under key ${old.primaryKeyId}`)
      .and.contains('TSFLOW_SECRET_KEY')
      .and.contains("connection 'db'");
  });

  it('refuses an altered value (authenticated encryption)', () => {
    const keyring = Keyring.parse(oldKey, 'k');
    const envelope = keyring.encrypt('value value value');
    const parts = envelope.split(':');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0] = body[0]! ^ 1;
    parts[3] = body.toString('base64url');
    expect(() => keyring.decrypt(parts.join(':'), 'it')).to.throw(DecryptionError, /altered or corrupted/);
  });

  it('refuses malformed keys by position, never echoing them', () => {
    expect(() => Keyring.parse('short', 'TSFLOW_SECRET_KEY')).to.throw(SecretKeyError, /TSFLOW_SECRET_KEY is not a key: a key is 32 random bytes/);
    const error = (() => {
      try {
        Keyring.parse(`${oldKey},not-a-key-at-all`, 'TSFLOW_SECRET_KEY');
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(error?.message).to.contain('key 2 of TSFLOW_SECRET_KEY').and.not.contain('not-a-key-at-all');
    expect(() => Keyring.parse(' , ', 'TSFLOW_SECRET_KEY')).to.throw(SecretKeyError, /empty/);
    // base64url keys are accepted as well as base64
    expect(Keyring.parse(Buffer.alloc(32, 7).toString('base64url'), 'k').keyIds).to.have.length(1);
  });
});

describe('secrets: trigger kwargs codec', () => {
  afterEach(() => installKeyring(undefined));

  it('stores ciphertext with a key, JSON without, and reads both forms (rows from before migration 0009)', () => {
    installKeyring(undefined);
    const plain = encodeTriggerKwargs({ url: 'http://x', token: 'abcdefgh' });
    expect(JSON.parse(plain)).to.deep.equal({ url: 'http://x', token: 'abcdefgh' });
    installKeyring(Keyring.parse(generateSecretKey(), 'TSFLOW_SECRET_KEY'));
    const sealed = encodeTriggerKwargs({ url: 'http://x', token: 'abcdefgh' });
    expect(sealed).to.match(/^v1:/).and.not.contain('abcdefgh');
    expect(decodeTriggerKwargs(sealed, 'trigger 1')).to.deep.equal({ url: 'http://x', token: 'abcdefgh' });
    expect(decodeTriggerKwargs(plain, 'trigger 2')).to.deep.equal({ url: 'http://x', token: 'abcdefgh' });
  });

  it('says which key is missing, or that there is no key at all', () => {
    installKeyring(Keyring.parse(generateSecretKey(), 'TSFLOW_SECRET_KEY'));
    const sealed = encodeTriggerKwargs({ a: 1 });
    const id = currentKeyring()!.primaryKeyId;
    installKeyring(Keyring.parse(generateSecretKey(), 'TSFLOW_SECRET_KEY'));
    expect(() => decodeTriggerKwargs(sealed, 'trigger 7')).to.throw(TriggerKwargsDecodeError, new RegExp(`trigger 7 is encrypted under key ${id}`));
    installKeyring(undefined);
    expect(() => decodeTriggerKwargs(sealed, 'trigger 7')).to.throw(TriggerKwargsDecodeError, /no secret key: set TSFLOW_SECRET_KEY/);
    expect(() => requireKeyring()).to.throw(NoSecretKeyError, /TSFLOW_SECRET_KEY is not set/);
  });
});

describe('secrets: connection URIs (Airflow form)', () => {
  it('reads type, percent-decoded login and password, host, port, schema and query extra', () => {
    const c = parseConnectionUri('postgresql://us%40er:p%40ss%3Aw%2Frd@db.example.com:5433/analytics?sslmode=require&opt=a&opt=b', '--uri');
    expect(c).to.deep.include({ connType: 'postgres', login: 'us@er', password: 'p@ss:w/rd', host: 'db.example.com', port: 5433, schema: 'analytics' });
    expect(c.extra).to.deep.equal({ sslmode: 'require', opt: ['a', 'b'] });
    expect(parseConnectionUri('my-type://h', 'x').connType).to.equal('my_type');
    expect(parseConnectionUri('http://https://api.example.com', 'x').host).to.equal('https://api.example.com');
    expect(parseConnectionUri('http://h?__extra__=%7B%22a%22%3A%7B%22b%22%3A1%7D%7D', 'x').extra).to.deep.equal({ a: { b: 1 } });
  });

  it('round-trips through connectionToUri', () => {
    const c = parseConnectionUri('http://user:p%40ss@h.example:8080/base?X-Team=a', 'x');
    expect(parseConnectionUri(connectionToUri(c), 'y')).to.deep.equal(c);
  });

  it('names the wrong part of a malformed URI, never the password', () => {
    const cases: [string, RegExp][] = [
      ['user:pass@host', /scheme \(connection type\) is missing/],
      ['http://u:secret-pw@host:99999/x', /the port '99999' is not a number from 1 to 65535/],
      ['http://u:secret-pw@host:abc', /the port is not a number/],
      ['http://u:secret/pw@host', /the port is not a number/], // an unencoded '/' cuts the authority inside the password
      ['http://u:%zz-secret@host', /the password is not valid percent-encoding/],
      ['http://u:secret-pw@host?__extra__=nope', /__extra__ query parameter is not valid JSON/],
      ['a://b://c://d', /at most twice/],
      ['9x://host', /the scheme '9x' is not valid/],
    ];
    for (const [uri, message] of cases) {
      expect(() => parseConnectionUri(uri, '--uri'), uri).to.throw(InvalidConnectionError, message);
      try {
        parseConnectionUri(uri, '--uri');
      } catch (error) {
        expect((error as Error).message).not.to.contain('secret');
      }
    }
  });

  it('reads TSFLOW_CONN_<ID> as a URI or as JSON (the id upper-cased)', () => {
    const env = {
      TSFLOW_CONN_MY_API: 'https://bot:tok3n-value@api.example.com',
      TSFLOW_CONN_MY_DB: JSON.stringify({ conn_type: 'postgres', host: 'db', port: 5432, login: 'u', password: 'pw123456', extra: '{"sslmode":"require"}' }),
    };
    expect(connectionFromEnvironment('my_api', env)).to.deep.include({ connId: 'my_api', connType: 'https', login: 'bot', password: 'tok3n-value' });
    expect(connectionFromEnvironment('my_db', env)).to.deep.include({ connType: 'postgres', port: 5432, password: 'pw123456', extra: { sslmode: 'require' } });
    expect(connectionFromEnvironment('other', env)).to.equal(undefined);
    expect(() => environmentConnection('missing_one', env)).to.throw(/connection 'missing_one' is not defined.*TSFLOW_CONN_MISSING_ONE/);
  });
});

describe('secrets: masking', () => {
  it('masks values inside longer text, percent-encoded and JSON-escaped, longest first', () => {
    const masker = new SecretMasker();
    masker.add('p@ss w"rd!');
    masker.add('p@ss');
    masker.add('abc'); // too short: ignored
    expect(masker.mask('login with p@ss w"rd! now')).to.equal(`login with ${MASK} now`);
    expect(masker.mask('http://u:p%40ss%20w%22rd!@h/')).to.equal(`http://u:${MASK}@h/`);
    expect(masker.mask(JSON.stringify({ msg: 'x p@ss w"rd! y' }))).to.equal(`{"msg":"x ${MASK} y"}`);
    expect(masker.mask('abc abc')).to.equal('abc abc');
  });

  it('masks by key name as Airflow does (a name containing password, token, api_key, …)', () => {
    for (const name of ['password', 'DB_PASSWORD', 'X-Api-Key', 'Authorization', 'github_token', 'client_secret']) expect(isSensitiveName(name), name).to.equal(true);
    for (const name of ['host', 'region', 'user']) expect(isSensitiveName(name), name).to.equal(false);
    const masker = new SecretMasker();
    expect(masker.maskJson({ url: 'http://h', headers: { Authorization: 'Basic xyz', Accept: 'json' }, token: 'abc' })).to.deep.equal({
      url: 'http://h',
      headers: { Authorization: MASK, Accept: 'json' },
      token: MASK,
    });
  });
});

describe('secrets: HTTP requests through a connection', () => {
  it('builds the base URL, Basic auth and headers from the connection', () => {
    const connection = { connId: 'api', ...parseConnectionUri('http://bot:pa55-word-x@127.0.0.1:8080/v1?X-Team=data', 'x') };
    const target = connectionTarget(connection, '/jobs/7?full=1', {}, 'HttpPollTrigger');
    expect(target.url.href).to.equal('http://127.0.0.1:8080/v1/jobs/7?full=1');
    expect(target.headers['Authorization']).to.equal(`Basic ${Buffer.from('bot:pa55-word-x').toString('base64')}`);
    expect(target.headers['X-Team']).to.equal('data');
    expect(target.redact(`failed with ${Buffer.from('bot:pa55-word-x').toString('base64')} and pa55-word-x`)).not.to.contain('pa55');
    const https = connectionTarget({ connId: 's', ...parseConnectionUri('https://h', 'x') }, 'health', {}, 'T');
    expect(https.url.href).to.equal('https://h/health');
  });
});
