// Where mooring finds age keys (as sops does), how it reads key files, and that a key never
// shows up in an error, a log line or a JSON dump.
import { inspect } from 'node:util';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, test } from 'vitest';
import { MooringError } from '../../src/errors.js';
import {
  AgeIdentity,
  defaultKeyFile,
  loadAgeIdentities,
  parseAgeIdentities,
} from '../../src/resolve/age-key.js';

interface Key {
  secret: string;
  recipient: string;
}

let k1: Key;
let k2: Key;
let k3: Key;

beforeAll(async () => {
  const make = async (): Promise<Key> => {
    const secret = await generateIdentity();
    return { secret, recipient: await identityToRecipient(secret) };
  };
  [k1, k2, k3] = await Promise.all([make(), make(), make()]);
});

/** A key file as age-keygen writes it. */
const keyFile = (k: Key): string =>
  `# created: 2025-01-01T00:00:00Z\n# public key: ${k.recipient}\n${k.secret}\n`;

/** A readFile over an in-memory set of files. */
function files(contents: Record<string, string>): (path: string) => Promise<string> {
  return (path) => {
    const text = contents[path];
    if (text === undefined) return Promise.reject(Object.assign(new Error('nope'), { code: 'ENOENT' }));
    return Promise.resolve(text);
  };
}

async function refusal(promise: Promise<unknown>): Promise<MooringError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof MooringError)) throw new Error(`expected a MooringError, got ${String(err)}`);
  return err;
}

describe('reading a key file', () => {
  test('reads the key age-keygen writes, skipping its comments', async () => {
    const ids = await parseAgeIdentities(keyFile(k1), '/keys/age.txt');
    expect(ids.map((i) => i.recipient)).toEqual([k1.recipient]);
    expect(ids[0]?.source).toBe('/keys/age.txt line 3');
  });

  test('reads several keys, blank lines and Windows line endings', async () => {
    const ids = await parseAgeIdentities(
      `${keyFile(k1)}\r\n\r\n${keyFile(k2).replaceAll('\n', '\r\n')}`,
      'keys.txt',
    );
    expect(ids.map((i) => i.recipient)).toEqual([k1.recipient, k2.recipient]);
  });

  test('SOPS_AGE_KEY may hold several keys on one line', async () => {
    const ids = await parseAgeIdentities(
      `${k1.secret} ${k2.secret}\n# comment\n${k3.secret}`,
      'SOPS_AGE_KEY',
      {
        severalPerLine: true,
      },
    );
    expect(ids.map((i) => i.recipient)).toEqual([k1.recipient, k2.recipient, k3.recipient]);
  });

  test.each([
    [
      'a line that is not a key',
      (k: Key) => `${k.secret}\nAGE-SECRET-KEY-BROKEN`,
      /line 2: not an age secret key/,
    ],
    ['a damaged key', (k: Key) => k.secret.slice(0, -2) + 'QQ', /line 1: not a valid age secret key/],
    [
      'a plugin identity',
      () => 'AGE-PLUGIN-YUBIKEY-1QQQQQ',
      /line 1: age plugin identities are not supported/,
    ],
    [
      'a post-quantum key',
      () => 'AGE-SECRET-KEY-PQ-1QQQQ',
      /line 1: post-quantum age identities are not supported/,
    ],
    [
      'a passphrase-protected key file',
      () => '-----BEGIN AGE ENCRYPTED FILE-----\nYWJj\n',
      /itself age-encrypted/,
    ],
  ])('refuses %s, naming the file and line but not the content', async (_, text, message) => {
    const content = text(k1);
    const err = await refusal(parseAgeIdentities(content, '/keys/age.txt', { file: '/keys/age.txt' }));
    expect(err.message).toMatch(message);
    expect(err.context.file).toBe('/keys/age.txt');
    for (const line of content.split('\n').filter((l) => l.length > 8)) {
      expect(JSON.stringify({ m: err.message, h: err.hint })).not.toContain(line);
    }
  });
});

describe('finding keys the way sops does', () => {
  test('--age-key-file, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY and the default file, in that order', async () => {
    const ids = await loadAgeIdentities({
      ageKeyFile: '/flag.txt',
      env: { SOPS_AGE_KEY_FILE: '/env.txt', SOPS_AGE_KEY: k3.secret, HOME: '/home/ops' },
      readFile: files({
        '/flag.txt': keyFile(k1),
        '/env.txt': keyFile(k2),
        '/home/ops/.config/sops/age/keys.txt': keyFile(k3) + keyFile(k1),
      }),
      platform: 'linux',
    });
    expect(ids.map((i) => [i.recipient, i.source])).toEqual([
      [k1.recipient, '/flag.txt line 3'],
      [k2.recipient, '/env.txt line 3'],
      [k3.recipient, 'SOPS_AGE_KEY line 1'],
    ]);
  });

  test('the default file lives under XDG_CONFIG_HOME when it is set', async () => {
    const ids = await loadAgeIdentities({
      env: { XDG_CONFIG_HOME: '/xdg', HOME: '/home/ops' },
      readFile: files({ '/xdg/sops/age/keys.txt': keyFile(k2) }),
      platform: 'linux',
    });
    expect(ids.map((i) => i.recipient)).toEqual([k2.recipient]);
  });

  test('no key anywhere is an empty list, not an error', async () => {
    expect(
      await loadAgeIdentities({ env: { HOME: '/home/ops' }, readFile: files({}), platform: 'linux' }),
    ).toEqual([]);
  });

  test.each([
    ['--age-key-file', { ageKeyFile: '/missing.txt', env: {} }],
    ['SOPS_AGE_KEY_FILE', { env: { SOPS_AGE_KEY_FILE: '/missing.txt' } }],
  ])('a key file named by %s must exist; the error names it', async (source, options) => {
    const err = await refusal(loadAgeIdentities({ ...options, readFile: files({}), platform: 'linux' }));
    expect(err.message).toBe(`cannot read the age key file given by ${source}: it does not exist`);
    expect(err.context).toEqual({ file: '/missing.txt' });
  });

  test('a broken key in SOPS_AGE_KEY names the variable, never the value', async () => {
    const err = await refusal(
      loadAgeIdentities({
        env: { SOPS_AGE_KEY: 'AGE-SECRET-KEY-1NOTAKEY' },
        readFile: files({}),
        platform: 'linux',
      }),
    );
    expect(err.message).toBe('SOPS_AGE_KEY line 1: not a valid age secret key');
  });

  test('reads real files from disk by default', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'mooring-age-key-'));
    try {
      await writeFile(join(dir, 'keys.txt'), keyFile(k1));
      const ids = await loadAgeIdentities({ env: { SOPS_AGE_KEY_FILE: join(dir, 'keys.txt'), HOME: dir } });
      expect(ids.map((i) => i.recipient)).toEqual([k1.recipient]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test.each([
    ['linux', { HOME: '/home/ops' }, '/home/ops/.config/sops/age/keys.txt'],
    ['darwin', { HOME: '/Users/ops' }, '/Users/ops/Library/Application Support/sops/age/keys.txt'],
    ['darwin', { HOME: '/Users/ops', XDG_CONFIG_HOME: '/xdg' }, '/xdg/sops/age/keys.txt'],
    ['linux', {}, undefined],
  ] as const)("sops' default location on %s with %o is %s", (platform, env, expected) => {
    expect(defaultKeyFile(env, platform)).toBe(expected);
  });
});

describe('an identity keeps its key to itself', () => {
  test('JSON, util.inspect and string conversion show only the public key and the source', async () => {
    const id = await AgeIdentity.fromSecretKey(k1.secret, 'SOPS_AGE_KEY line 1');
    const shown = [
      JSON.stringify(id),
      JSON.stringify({ nested: [id] }),
      inspect(id),
      inspect({ id }),
      `${String(id)}`,
    ];
    for (const s of shown) expect(s).not.toContain(k1.secret.slice('AGE-SECRET-KEY-1'.length, 30));
    expect(JSON.parse(JSON.stringify(id))).toEqual({
      recipient: k1.recipient,
      source: 'SOPS_AGE_KEY line 1',
    });
    expect(Object.keys(id)).toEqual(['recipient', 'source']);
  });

  test('derives keys for other purposes without revealing its own, one per purpose', async () => {
    const id = await AgeIdentity.fromSecretKey(k1.secret, 'test');
    const again = await AgeIdentity.fromSecretKey(k1.secret, 'elsewhere');
    expect(id.deriveKey('digest')).toEqual(again.deriveKey('digest'));
    expect(id.deriveKey('digest')).not.toEqual(id.deriveKey('other'));
    expect(id.deriveKey('digest')).toHaveLength(32);
  });
});
