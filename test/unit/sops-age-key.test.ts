// Where mooring finds age keys (as sops does), how it reads key files, and that a key never
// shows up in an error, a log line or a JSON dump.
import { inspect } from 'node:util';
import { bech32 } from '@scure/base';
import { generateHybridIdentity, generateIdentity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, test } from 'vitest';
import { MooringError } from '../../src/errors.js';
import {
  AgeIdentity,
  AgeKeyError,
  defaultKeyFile,
  loadAgeIdentities,
  loadAgeKeys,
  parseAgeIdentities,
  splitCommand,
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
      /line 2: not an age identity/,
    ],
    ['a damaged key', (k: Key) => k.secret.slice(0, -2) + 'QQ', /line 1: not a valid age secret key/],
    [
      'a key indented by a space (sops reads the line as it is)',
      (k: Key) => ` ${k.secret}`,
      /line 1: not an age identity/,
    ],
    [
      'a damaged plugin identity',
      () => 'AGE-PLUGIN-YUBIKEY-1QQQQQ',
      /line 1: not a valid age plugin identity/,
    ],
    ['a damaged post-quantum key', () => 'AGE-SECRET-KEY-PQ-1QQQQ', /line 1: not a valid age secret key/],
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
  test('--age-key-file, SOPS_AGE_KEY, SOPS_AGE_KEY_FILE and the default file, each key once', async () => {
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
      [k3.recipient, 'SOPS_AGE_KEY line 1'],
      [k2.recipient, '/env.txt line 3'],
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

  test('--age-key-file must load: a missing file is an AgeKeyError (exit 2) naming it', async () => {
    const err = await refusal(loadAgeKeys({ ageKeyFile: '/missing.txt', env: {}, readFile: files({}) }));
    expect(err).toBeInstanceOf(AgeKeyError);
    expect(err.message).toBe(
      '--age-key-file: cannot read /missing.txt (given by --age-key-file): it does not exist',
    );
    expect(err.context).toEqual({ file: '/missing.txt' });
  });

  test('--age-key-file with a bad line is an AgeKeyError naming the file and line, not the line', async () => {
    const err = await refusal(
      loadAgeKeys({
        ageKeyFile: '/k.txt',
        env: {},
        readFile: files({ '/k.txt': `${k1.secret}\ngarbage-line` }),
      }),
    );
    expect(err).toBeInstanceOf(AgeKeyError);
    expect(err.message).toMatch(/\/k\.txt line 2: not an age identity/);
    expect(err.message).not.toContain('garbage-line');
  });

  test('a missing SOPS_AGE_KEY_FILE does not stop a valid SOPS_AGE_KEY; the problem is kept', async () => {
    const keys = await loadAgeKeys({
      env: { SOPS_AGE_KEY_FILE: '/missing.txt', SOPS_AGE_KEY: k1.secret },
      readFile: files({}),
      platform: 'linux',
    });
    expect(keys.identities.map((i) => i.recipient)).toEqual([k1.recipient]);
    expect(keys.problems).toEqual([
      'cannot read /missing.txt (given by SOPS_AGE_KEY_FILE): it does not exist',
    ]);
  });

  test('garbage in the default keys.txt does not stop a valid SOPS_AGE_KEY_FILE', async () => {
    const keys = await loadAgeKeys({
      env: { SOPS_AGE_KEY_FILE: '/env.txt', XDG_CONFIG_HOME: '/xdg', HOME: '/home/ops' },
      readFile: files({ '/env.txt': keyFile(k2), '/xdg/sops/age/keys.txt': `${k1.secret}\nnot a key\n` }),
      platform: 'linux',
    });
    expect(keys.identities.map((i) => i.recipient)).toEqual([k2.recipient]);
    expect(keys.problems).toEqual([
      '/xdg/sops/age/keys.txt line 2: not an age identity (expected AGE-SECRET-KEY-1...)',
    ]);
  });

  test('as in sops, one bad line leaves its whole source out, never the other sources', async () => {
    const keys = await loadAgeKeys({
      env: { SOPS_AGE_KEY_FILE: '/env.txt', SOPS_AGE_KEY: `garbage ${k2.secret}` },
      readFile: files({ '/env.txt': keyFile(k1) }),
      platform: 'linux',
    });
    expect(keys.identities.map((i) => i.recipient)).toEqual([k1.recipient]);
    expect(keys.problems).toEqual([
      'SOPS_AGE_KEY line 1: not an age identity (expected AGE-SECRET-KEY-1...)',
    ]);
  });

  test('a post-quantum key and a plugin identity load beside a native key, as in sops', async () => {
    const pq = await generateHybridIdentity();
    const plugin = bech32
      .encode('age-plugin-yubikey-', bech32.toWords(new Uint8Array(32).fill(7)), false)
      .toUpperCase();
    const keys = await loadAgeKeys({
      env: { SOPS_AGE_KEY_FILE: '/env.txt' },
      readFile: files({ '/env.txt': `${plugin}\n${pq}\n${k1.secret}\n` }),
      platform: 'linux',
    });
    expect(keys.problems).toEqual([]);
    expect(keys.identities.map((i) => i.recipient)).toEqual([
      'age-plugin-yubikey identity',
      await identityToRecipient(pq),
      k1.recipient,
    ]);
    expect(keys.identities[0]?.unsupported).toMatch(/mooring runs no age plugins/);
    expect(keys.identities[1]?.recipient).toMatch(/^age1pq1/);
  });

  test('no source loading and nothing else configured is an AgeKeyError listing each problem', async () => {
    const err = await refusal(
      loadAgeKeys({ env: { SOPS_AGE_KEY_FILE: '/missing.txt' }, readFile: files({}), platform: 'linux' }),
    );
    expect(err).toBeInstanceOf(AgeKeyError);
    expect(err.message).toBe(
      'no age key could be loaded: cannot read /missing.txt (given by SOPS_AGE_KEY_FILE): it does not exist',
    );
  });

  test('a broken key in SOPS_AGE_KEY names the variable, never the value', async () => {
    const err = await refusal(
      loadAgeIdentities({
        env: { SOPS_AGE_KEY: 'AGE-SECRET-KEY-1NOTAKEY' },
        readFile: files({}),
        platform: 'linux',
      }),
    );
    expect(err.message).toBe('no age key could be loaded: SOPS_AGE_KEY line 1: not a valid age secret key');
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

describe('SOPS_AGE_KEY_CMD and SOPS_AGE_SSH_PRIVATE_KEY_CMD', () => {
  test('runs the command for each recipient, split like a shell, with SOPS_AGE_RECIPIENT set', async () => {
    const calls: { argv: readonly string[]; recipient: string | undefined }[] = [];
    const keys = await loadAgeKeys({
      env: { SOPS_AGE_KEY_CMD: `vault read -field=key 'secret/age key'`, HOME: '/home/ops' },
      readFile: files({}),
      platform: 'linux',
      runCommand: (argv, env) => {
        calls.push({ argv, recipient: env.SOPS_AGE_RECIPIENT });
        return Promise.resolve(`# a comment\n${k1.secret}\n`);
      },
    });
    expect(keys.identities).toEqual([]);
    const found = await keys.forRecipient(k1.recipient);
    expect(found.identities.map((i) => [i.recipient, i.source])).toEqual([
      [k1.recipient, 'the output of SOPS_AGE_KEY_CMD line 2'],
    ]);
    await keys.forRecipient(k1.recipient);
    expect(calls).toEqual([
      { argv: ['vault', 'read', '-field=key', 'secret/age key'], recipient: k1.recipient },
    ]);
  });

  test('a failing command is a problem naming the variable and exit code, never its output', async () => {
    const keys = await loadAgeKeys({
      env: { SOPS_AGE_KEY_CMD: 'get-key', SOPS_AGE_KEY: k2.secret },
      readFile: files({}),
      platform: 'linux',
      runCommand: () => Promise.reject(Object.assign(new Error(`printed ${k1.secret}`), { exitCode: 3 })),
    });
    const found = await keys.forRecipient(k1.recipient);
    expect(found.identities.map((i) => i.recipient)).toEqual([k2.recipient]);
    expect(found.problems).toEqual(['SOPS_AGE_KEY_CMD failed: it exited with code 3']);
  });

  test('a command printing garbage is a problem that does not repeat what it printed', async () => {
    const keys = await loadAgeKeys({
      env: { SOPS_AGE_KEY_CMD: 'get-key' },
      readFile: files({}),
      platform: 'linux',
      runCommand: () => Promise.resolve(`${k1.secret.slice(0, -3)}xyz\n`),
    });
    const found = await keys.forRecipient(k1.recipient);
    expect(found.identities).toEqual([]);
    expect(found.problems).toEqual(['the output of SOPS_AGE_KEY_CMD line 1: not a valid age secret key']);
  });

  test.each([
    ['cat /keys/age.txt', ['cat', '/keys/age.txt']],
    [`sh -c 'echo "$X"'`, ['sh', '-c', 'echo "$X"']],
    ['a "b c" "d\\"e"', ['a', 'b c', 'd"e']],
    ['tool arg # comment', ['tool', 'arg']],
    ['x\\ y', ['x y']],
  ])('splits %s as sops does', (command, argv) => {
    expect(splitCommand(command)).toEqual(argv);
  });

  test('an unclosed quote is not a command', () => {
    expect(splitCommand(`cat 'oops`)).toBeUndefined();
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
