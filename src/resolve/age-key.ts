// Where mooring finds the age keys that open SOPS files, read the way sops reads them:
// `--age-key-file`, then SOPS_AGE_KEY_FILE, then SOPS_AGE_KEY (several keys, one or more per
// line, # comments), then sops' default keys.txt when it exists. Every key found is tried,
// as sops does. A key is only ever held inside an AgeIdentity, which never prints it: not in
// errors, not in logs, not through JSON or util.inspect.
import { createHmac } from 'node:crypto';
import { readFile as readFileFromDisk } from 'node:fs/promises';
import { join } from 'node:path';
import { Decrypter, armor, identityToRecipient } from 'age-encryption';
import { MooringError } from '../errors.js';

export interface AgeKeyOptions {
  /** The environment to read SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, XDG_CONFIG_HOME, HOME and APPDATA from. */
  env: Readonly<Record<string, string | undefined>>;
  /** `--age-key-file`: an explicit key file; unlike the default location, it must exist. */
  ageKeyFile?: string;
  /** Reads a key file as UTF-8 (node:fs by default). */
  readFile?: (path: string) => Promise<string>;
  /** Decides the default location (sops follows Go's os.UserConfigDir); process.platform by default. */
  platform?: NodeJS.Platform;
}

/** One age X25519 identity (`AGE-SECRET-KEY-1...`) and where it was read from. */
export class AgeIdentity {
  /** Its public key, `age1...`: what a SOPS file lists under `sops.age[].recipient`. */
  readonly recipient: string;
  /** Where it came from, for messages: a file path or an environment variable name. */
  readonly source: string;
  readonly #secretKey: string;

  private constructor(secretKey: string, recipient: string, source: string) {
    this.#secretKey = secretKey;
    this.recipient = recipient;
    this.source = source;
  }

  /** Checks an `AGE-SECRET-KEY-1...` string; the error never repeats it. */
  static async fromSecretKey(secretKey: string, source: string): Promise<AgeIdentity> {
    let recipient: string;
    try {
      recipient = await identityToRecipient(secretKey);
    } catch {
      throw new MooringError(`${source}: not a valid age secret key`, {});
    }
    return new AgeIdentity(secretKey, recipient, source);
  }

  /**
   * Opens an age-encrypted file (binary or ASCII-armored) with this key. Undefined when the
   * file was not encrypted for this key or cannot be opened: the caller knows which file it
   * is and says so.
   */
  async decrypt(ageFile: string | Uint8Array): Promise<Uint8Array | undefined> {
    try {
      const bytes = typeof ageFile === 'string' ? armor.decode(ageFile) : ageFile;
      const decrypter = new Decrypter();
      decrypter.addIdentity(this.#secretKey);
      return await decrypter.decrypt(bytes, 'uint8array');
    } catch {
      return undefined;
    }
  }

  /**
   * A 32-byte key derived from this identity for another purpose (such as keyed digests of
   * secret values), so that the age key itself never has to leave this object.
   */
  deriveKey(purpose: string): Buffer {
    return createHmac('sha256', this.#secretKey).update(`mooring:${purpose}`).digest();
  }

  toJSON(): { recipient: string; source: string } {
    return { recipient: this.recipient, source: this.source };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `AgeIdentity { recipient: '${this.recipient}', source: '${this.source}' }`;
  }
}

/**
 * Reads age identities from the text of a key file (as age-keygen writes it) or of
 * SOPS_AGE_KEY. Blank lines and lines starting with # are skipped; with `severalPerLine`
 * (SOPS_AGE_KEY) a line may hold several keys separated by spaces. Errors name the source
 * and the line, never the line's content.
 */
export async function parseAgeIdentities(
  text: string,
  source: string,
  options: { severalPerLine?: boolean; file?: string } = {},
): Promise<AgeIdentity[]> {
  const where = options.file === undefined ? {} : { file: options.file };
  const start = text.replace(/^\uFEFF/, '').trimStart();
  if (start.startsWith('age-encryption.org/') || start.startsWith('-----BEGIN AGE')) {
    throw new MooringError(`${source} is itself age-encrypted (passphrase-protected)`, where, {
      hint: 'mooring runs unattended and cannot ask for a passphrase: give it the plain key file',
    });
  }
  const identities: AgeIdentity[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, line] of lines.entries()) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const words = options.severalPerLine ? trimmed.split(/\s+/) : [trimmed];
    for (const word of words) {
      const at = `${source} line ${index + 1}`;
      if (word.startsWith('AGE-PLUGIN-')) {
        throw new MooringError(`${at}: age plugin identities are not supported`, where, {
          hint: 'use a native age key (age-keygen)',
        });
      }
      if (word.startsWith('AGE-SECRET-KEY-PQ-1')) {
        throw new MooringError(`${at}: post-quantum age identities are not supported`, where, {
          hint: 'use a native X25519 age key (age-keygen without -pq)',
        });
      }
      if (!word.startsWith('AGE-SECRET-KEY-1')) {
        throw new MooringError(`${at}: not an age secret key (expected AGE-SECRET-KEY-1...)`, where);
      }
      identities.push(await AgeIdentity.fromSecretKey(word, at).catch(rethrowWith(where)));
    }
  }
  return identities;
}

/**
 * Every age identity configured for this process, in the order sops would find them;
 * a key found in two places is kept once. An empty list is not an error here: only a
 * SOPS file that needs a key makes it one.
 */
export async function loadAgeIdentities(options: AgeKeyOptions): Promise<AgeIdentity[]> {
  const { env } = options;
  const readFile = options.readFile ?? ((path: string) => readFileFromDisk(path, 'utf8'));
  const found: AgeIdentity[] = [];

  const fromFile = async (path: string, source: string, required: boolean): Promise<void> => {
    let text: string;
    try {
      text = await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!required && code === 'ENOENT') return;
      const why =
        code === 'ENOENT'
          ? 'it does not exist'
          : code === 'EACCES'
            ? 'permission denied'
            : (code ?? 'unreadable');
      // A key pasted where a path belongs must not be echoed back into a log.
      if (/AGE-SECRET-KEY-/i.test(path)) {
        throw new MooringError(
          `${source} holds an age key, not the path of a key file`,
          {},
          {
            hint: 'put the key in a file and point at it, or use SOPS_AGE_KEY for the key itself',
          },
        );
      }
      throw new MooringError(`cannot read the age key file given by ${source}: ${why}`, { file: path });
    }
    found.push(...(await parseAgeIdentities(text, path, { file: path })));
  };

  if (options.ageKeyFile) await fromFile(options.ageKeyFile, '--age-key-file', true);
  const keyFile = env.SOPS_AGE_KEY_FILE;
  if (keyFile) await fromFile(keyFile, 'SOPS_AGE_KEY_FILE', true);
  const inline = env.SOPS_AGE_KEY;
  if (inline) found.push(...(await parseAgeIdentities(inline, 'SOPS_AGE_KEY', { severalPerLine: true })));
  const defaultFile = defaultKeyFile(env, options.platform ?? process.platform);
  if (defaultFile) await fromFile(defaultFile, "sops' default location", false);

  const seen = new Set<string>();
  return found.filter((id) => !seen.has(id.recipient) && seen.add(id.recipient));
}

/** sops' default keys file: `<user config dir>/sops/age/keys.txt`, as Go's os.UserConfigDir finds it. */
export function defaultKeyFile(
  env: Readonly<Record<string, string | undefined>>,
  platform: NodeJS.Platform,
): string | undefined {
  const configDir = (): string | undefined => {
    // sops honours XDG_CONFIG_HOME on macOS too, where Go itself would not.
    if (platform !== 'win32' && env.XDG_CONFIG_HOME) return env.XDG_CONFIG_HOME;
    if (platform === 'win32') return env.APPDATA || undefined;
    if (!env.HOME) return undefined;
    return platform === 'darwin'
      ? join(env.HOME, 'Library', 'Application Support')
      : join(env.HOME, '.config');
  };
  const dir = configDir();
  return dir === undefined ? undefined : join(dir, 'sops', 'age', 'keys.txt');
}

function rethrowWith(where: { file?: string }): (err: unknown) => never {
  return (err) => {
    if (err instanceof MooringError) throw new MooringError(err.message, { ...err.context, ...where });
    throw err;
  };
}
