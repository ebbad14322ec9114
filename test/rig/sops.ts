// Test helpers that make SOPS files with the real tools (.tools/bin/sops and age-keygen,
// built by scripts/setup.mjs), so that mooring is tested against what sops really writes.
// Each call works in a fresh temporary directory with an empty sops config and a clean
// environment: no .sops.yaml, key file or SOPS_* variable of the machine leaks in. The
// plaintext fixture exists on disk only inside that directory, only while sops runs.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parse } from 'yaml';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.tools', 'bin');
export const SOPS_BINARY = join(BIN, 'sops');
export const AGE_KEYGEN_BINARY = join(BIN, 'age-keygen');

export interface AgeKeyPair {
  /** `age1...` */
  publicKey: string;
  /** `AGE-SECRET-KEY-1...` */
  identity: string;
  /** The key file exactly as age-keygen wrote it (comments included). */
  keyFile: string;
}

export interface SopsEncryptOptions {
  recipients: string[];
  unencryptedSuffix?: string;
  encryptedSuffix?: string;
  encryptedRegex?: string;
  unencryptedRegex?: string;
  macOnlyEncrypted?: boolean;
  /** Name of the plaintext file sops encrypts (default `secrets.sops.yaml`). */
  filename?: string;
}

/** A fresh age key pair from the real age-keygen. */
export async function ageKeygen(): Promise<AgeKeyPair> {
  const { stdout } = await execa(AGE_KEYGEN_BINARY, [], { env: cleanEnv(), extendEnv: false });
  const identity = stdout.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'));
  const publicKey = /# public key: (age1\S+)/.exec(stdout)?.[1];
  if (!identity || !publicKey) throw new Error('age-keygen printed no key pair');
  return { publicKey, identity, keyFile: `${stdout}\n` };
}

/** Encrypts a YAML document with the real `sops --encrypt` and returns the encrypted YAML. */
export async function sopsEncrypt(plainYaml: string, opts: SopsEncryptOptions): Promise<string> {
  return inTempDir(async (dir) => {
    const name = opts.filename ?? 'secrets.sops.yaml';
    await writeFile(join(dir, name), plainYaml);
    const args = [
      '--config',
      join(dir, 'empty-sops-config.yaml'),
      '--encrypt',
      '--input-type',
      'yaml',
      '--output-type',
      'yaml',
      '--age',
      opts.recipients.join(','),
    ];
    if (opts.unencryptedSuffix !== undefined) args.push('--unencrypted-suffix', opts.unencryptedSuffix);
    if (opts.encryptedSuffix !== undefined) args.push('--encrypted-suffix', opts.encryptedSuffix);
    if (opts.encryptedRegex !== undefined) args.push('--encrypted-regex', opts.encryptedRegex);
    if (opts.unencryptedRegex !== undefined) args.push('--unencrypted-regex', opts.unencryptedRegex);
    if (opts.macOnlyEncrypted) args.push('--mac-only-encrypted');
    args.push(name);
    const { stdout } = await execa(SOPS_BINARY, args, { cwd: dir, env: cleanEnv(dir), extendEnv: false });
    return `${stdout}\n`;
  });
}

/**
 * Asks the real `sops --decrypt` about an encrypted file: the document it prints (read
 * back as YAML 1.2) when it accepts the file, or its error. Used to check that mooring
 * accepts and refuses exactly what sops does.
 */
export async function sopsDecrypt(
  encryptedYaml: string,
  identity: string,
): Promise<{ ok: true; document: unknown } | { ok: false; stderr: string }> {
  return inTempDir(async (dir) => {
    await writeFile(join(dir, 'secrets.sops.yaml'), encryptedYaml);
    const result = await execa(
      SOPS_BINARY,
      [
        '--config',
        join(dir, 'empty-sops-config.yaml'),
        '--decrypt',
        '--input-type',
        'yaml',
        '--output-type',
        'yaml',
        'secrets.sops.yaml',
      ],
      { cwd: dir, env: { ...cleanEnv(dir), SOPS_AGE_KEY: identity }, extendEnv: false, reject: false },
    );
    return result.exitCode === 0
      ? { ok: true, document: parse(result.stdout) as unknown }
      : { ok: false, stderr: result.stderr };
  });
}

async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'mooring-sops-'));
  try {
    await writeFile(join(dir, 'empty-sops-config.yaml'), '');
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function cleanEnv(home?: string): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home ?? tmpdir() };
}
