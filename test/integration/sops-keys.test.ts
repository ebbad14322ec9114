// mooring finds age keys as sops 3.13 does: every key source configured in the environment
// (key files, SOPS_AGE_KEY, the default keys.txt, SSH keys, key commands) is read on its own
// and decryption uses whatever loaded. Each case runs the real `sops -d` and mooring with the
// same environment on a file the real sops encrypted: both open it with the same values, or
// both refuse. Keys come from the real age-keygen and ssh-keygen.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bech32 } from '@scure/base';
import { execa } from 'execa';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { MooringError } from '../../src/errors.js';
import { loadAgeKeys } from '../../src/resolve/age-key.js';
import { decryptSops } from '../../src/resolve/sops.js';
import { AGE_KEYGEN_BINARY, SOPS_BINARY } from '../rig/sops.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const SECRET = 'k3y-l0ading-s3cret';
const PLAIN = `password: ${SECRET}\nport: 5432\n`;

let dir: string;
const path = (name: string): string => join(dir, name);
/** The encrypted files, by recipient kind. */
const files: Record<'age' | 'pq' | 'ed25519' | 'rsa', string> = { age: '', pq: '', ed25519: '', rsa: '' };
const keys = { good: '', goodPublic: '', other: '', pq: '', pqPublic: '' };

function keygen(args: string[] = []): { secret: string; public: string } {
  const out = execFileSync(AGE_KEYGEN_BINARY, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const secret = out.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-')) ?? '';
  return { secret, public: /# public key: (\S+)/.exec(out)?.[1] ?? '' };
}

function sshKeygen(type: string, name: string, passphrase = ''): string {
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', '', '-f', path(name)], {
    stdio: 'ignore',
  });
  return readFileSync(path(`${name}.pub`), 'utf8').trim();
}

function encrypt(recipient: string): string {
  writeFileSync(path('plain.yaml'), PLAIN);
  return execFileSync(
    SOPS_BINARY,
    ['--encrypt', '--input-type', 'yaml', '--output-type', 'yaml', '--age', recipient, path('plain.yaml')],
    { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: path('empty-home') }, encoding: 'utf8' },
  );
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mooring-sops-keys-'));
  mkdirSync(path('empty-home'));
  const good = keygen();
  const pq = keygen(['-pq']);
  Object.assign(keys, {
    good: good.secret,
    goodPublic: good.public,
    other: keygen().secret,
    pq: pq.secret,
    pqPublic: pq.public,
  });
  writeFileSync(path('good.txt'), `# public key: ${good.public}\n${good.secret}\n`);
  files.age = encrypt(good.public);
  files.pq = encrypt(pq.public);
  files.ed25519 = encrypt(sshKeygen('ed25519', 'id_ed25519'));
  files.rsa = encrypt(sshKeygen('rsa', 'id_rsa'));
  sshKeygen('ed25519', 'locked_ed25519', 'a passphrase');
  // A home whose ~/.ssh holds the ed25519 key, as sops looks there by default.
  mkdirSync(path('ssh-home/.ssh'), { recursive: true });
  writeFileSync(path('ssh-home/.ssh/id_ed25519'), readFileSync(path('id_ed25519')), { mode: 0o600 });
  // A home whose default keys.txt is garbage.
  mkdirSync(path('garbage-home/.config/sops/age'), { recursive: true });
  writeFileSync(path('garbage-home/.config/sops/age/keys.txt'), 'this is not a key\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const plugin = (): string =>
  bech32.encode('age-plugin-yubikey-', bech32.toWords(new Uint8Array(32).fill(9)), false).toUpperCase();

interface Case {
  name: string;
  file: keyof typeof files;
  env: () => Record<string, string>;
}

const CASES: Case[] = [
  { name: 'a key file', file: 'age', env: () => ({ SOPS_AGE_KEY_FILE: path('good.txt') }) },
  {
    name: 'a post-quantum key beside a good key in one file',
    file: 'age',
    env: () => (
      writeFileSync(path('pq-and-good.txt'), `${keys.pq}\n${keys.good}\n`),
      { SOPS_AGE_KEY_FILE: path('pq-and-good.txt') }
    ),
  },
  { name: 'a file for a post-quantum recipient', file: 'pq', env: () => ({ SOPS_AGE_KEY: keys.pq }) },
  {
    name: 'a YubiKey plugin identity beside a good key in one file',
    file: 'age',
    env: () => (
      writeFileSync(path('plugin-and-good.txt'), `${plugin()}\n${keys.good}\n`),
      { SOPS_AGE_KEY_FILE: path('plugin-and-good.txt') }
    ),
  },
  {
    name: 'a garbage line beside a good key in one file (sops drops the whole file)',
    file: 'age',
    env: () => (
      writeFileSync(path('garbage-and-good.txt'), `garbage\n${keys.good}\n`),
      { SOPS_AGE_KEY_FILE: path('garbage-and-good.txt') }
    ),
  },
  {
    name: 'a garbage key file beside a good SOPS_AGE_KEY',
    file: 'age',
    env: () => (
      writeFileSync(path('garbage.txt'), 'garbage\n'),
      { SOPS_AGE_KEY_FILE: path('garbage.txt'), SOPS_AGE_KEY: keys.good }
    ),
  },
  {
    name: 'a missing SOPS_AGE_KEY_FILE with a valid SOPS_AGE_KEY',
    file: 'age',
    env: () => ({ SOPS_AGE_KEY_FILE: path('missing.txt'), SOPS_AGE_KEY: keys.good }),
  },
  {
    name: 'garbage in the default keys.txt under XDG_CONFIG_HOME with a valid SOPS_AGE_KEY_FILE',
    file: 'age',
    env: () => ({ XDG_CONFIG_HOME: path('garbage-home/.config'), SOPS_AGE_KEY_FILE: path('good.txt') }),
  },
  {
    name: 'garbage in ~/.config/sops/age/keys.txt with a valid SOPS_AGE_KEY',
    file: 'age',
    env: () => ({ HOME: path('garbage-home'), SOPS_AGE_KEY: keys.good }),
  },
  {
    name: 'SOPS_AGE_KEY_CMD printing the key',
    file: 'age',
    env: () => ({ SOPS_AGE_KEY_CMD: `cat ${path('good.txt')}` }),
  },
  {
    name: 'SOPS_AGE_KEY_CMD printing the key only for the recipient it is asked for',
    file: 'age',
    env: () => ({
      SOPS_AGE_KEY_CMD: `sh -c 'test "$SOPS_AGE_RECIPIENT" = ${keys.goodPublic} && cat ${path('good.txt')}'`,
    }),
  },
  {
    name: 'a failing SOPS_AGE_KEY_CMD beside a valid SOPS_AGE_KEY',
    file: 'age',
    env: () => ({ SOPS_AGE_KEY_CMD: 'false', SOPS_AGE_KEY: keys.good }),
  },
  { name: 'a failing SOPS_AGE_KEY_CMD alone', file: 'age', env: () => ({ SOPS_AGE_KEY_CMD: 'false' }) },
  {
    name: 'an ssh-ed25519 key in SOPS_AGE_SSH_PRIVATE_KEY_FILE',
    file: 'ed25519',
    env: () => ({ SOPS_AGE_SSH_PRIVATE_KEY_FILE: path('id_ed25519') }),
  },
  {
    name: 'an ssh-rsa key in SOPS_AGE_SSH_PRIVATE_KEY_FILE',
    file: 'rsa',
    env: () => ({ SOPS_AGE_SSH_PRIVATE_KEY_FILE: path('id_rsa') }),
  },
  { name: 'the default ~/.ssh/id_ed25519', file: 'ed25519', env: () => ({ HOME: path('ssh-home') }) },
  {
    name: 'SOPS_AGE_SSH_PRIVATE_KEY_CMD printing an ssh-ed25519 key',
    file: 'ed25519',
    env: () => ({ SOPS_AGE_SSH_PRIVATE_KEY_CMD: `cat ${path('id_ed25519')}` }),
  },
  {
    name: 'a passphrase-protected SSH key beside a good age key',
    file: 'age',
    env: () => ({ SOPS_AGE_SSH_PRIVATE_KEY_FILE: path('locked_ed25519'), SOPS_AGE_KEY: keys.good }),
  },
  { name: 'the wrong key', file: 'age', env: () => ({ SOPS_AGE_KEY: keys.other }) },
  { name: 'no key at all', file: 'age', env: () => ({}) },
];

type Outcome = { ok: true; value: unknown } | { ok: false; error: string };

async function viaSops(c: Case, env: Record<string, string>): Promise<Outcome> {
  writeFileSync(path(`${c.file}.sops.yaml`), files[c.file]);
  const r = await execa(
    SOPS_BINARY,
    ['--decrypt', '--input-type', 'yaml', '--output-type', 'yaml', path(`${c.file}.sops.yaml`)],
    { cwd: dir, env, extendEnv: false, reject: false, stdin: 'ignore' },
  );
  return r.exitCode === 0 ? { ok: true, value: parse(r.stdout) } : { ok: false, error: r.stderr };
}

async function viaMooring(c: Case, env: Record<string, string>): Promise<Outcome> {
  try {
    const loaded = await loadAgeKeys({ env });
    return { ok: true, value: await decryptSops(files[c.file], 'secrets.sops.yaml', loaded) };
  } catch (err) {
    if (!(err instanceof MooringError)) throw err;
    return { ok: false, error: `${err.describe()} ${JSON.stringify(err.toJSON())}` };
  }
}

describe('age keys found as sops finds them', () => {
  test.each(CASES)('$name', async (c) => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: path('empty-home'), ...c.env() };
    const [sops, mooring] = await Promise.all([viaSops(c, env), viaMooring(c, env)]);
    if (sops.ok) {
      if (!mooring.ok) throw new Error(`sops opens it, mooring refuses: ${mooring.error}`);
      expect(mooring.value).toEqual(sops.value);
      expect(mooring.value).toEqual({ password: SECRET, port: 5432 });
    } else {
      if (mooring.ok) throw new Error(`sops refuses it (${sops.error.trim()}), mooring opens it`);
      for (const secret of [
        SECRET,
        keys.good,
        keys.other,
        keys.pq,
        readFileSync(path('id_ed25519'), 'utf8'),
      ]) {
        expect(mooring.error).not.toContain(secret);
      }
      // Either the file is named, or no key source loaded at all (exit 2 before any file).
      expect(mooring.error).toMatch(/secrets\.sops\.yaml|^no age key could be loaded/);
    }
  });
});

describe('an age key that cannot load is local configuration: exit code 2', () => {
  async function run(args: string[], env: Record<string, string>) {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
    const saved = { ...process.env };
    for (const k of Object.keys(process.env)) if (k.startsWith('SOPS_')) delete process.env[k];
    Object.assign(process.env, { HOME: path('empty-home') }, env);
    try {
      const code = await main(args, io);
      return { code, text: out.join('\n') + err.join('\n') };
    } finally {
      process.env = saved;
    }
  }
  const repo = join(ROOT, 'example-repo');

  test('validate with a missing --age-key-file', async () => {
    const r = await run(
      ['validate', '--repo', repo, '--no-render', '--age-key-file', path('missing.txt')],
      {},
    );
    expect(r.code).toBe(2);
    expect(r.text).toContain(
      `cannot read ${path('missing.txt')} (given by --age-key-file): it does not exist`,
    );
  });

  test('plan with a SOPS_AGE_KEY_FILE that is not a key file, and no other key', async () => {
    writeFileSync(path('not-a-key.txt'), 'hello\n');
    const r = await run(['plan', '--repo', repo, '--cluster', 'prod-eu-west', '--no-render'], {
      SOPS_AGE_KEY_FILE: path('not-a-key.txt'),
    });
    expect(r.code).toBe(2);
    expect(r.text).toContain(`${path('not-a-key.txt')} line 1: not an age identity`);
  });

  test('run --once with a malformed --age-key-file, before any cluster is asked', async () => {
    writeFileSync(path('broken.txt'), `${keys.good.slice(0, -4)}QQQQ\n`);
    const r = await run(
      [
        'run',
        '--once',
        '--repo',
        'https://git.invalid/r.git',
        '--cluster',
        'c',
        '--age-key-file',
        path('broken.txt'),
      ],
      { KUBECONFIG: path('missing-kubeconfig') },
    );
    expect(r.code).toBe(2);
    expect(r.text).not.toContain(keys.good.slice(20, 40));
  });
});
