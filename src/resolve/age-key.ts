// Where mooring finds the age keys that open SOPS files, read the way sops 3.13 reads them.
// Every source is read on its own, and decryption uses whatever identities loaded: a
// source that cannot be read or parsed is a problem that is named only when no key opens
// a file (as sops does), never a reason to ignore the other sources. The sources:
//   --age-key-file (mooring's own flag: it must be readable, or the command exits 2)
//   SOPS_AGE_SSH_PRIVATE_KEY_FILE, SOPS_AGE_SSH_PRIVATE_KEY_CMD, ~/.ssh/id_ed25519, ~/.ssh/id_rsa
//   SOPS_AGE_KEY (several keys per line), SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD
//   <user config dir>/sops/age/keys.txt
// In one source, every line must be an identity (X25519, post-quantum, or an age plugin's),
// or that whole source is left out, as in sops. The commands run with SOPS_AGE_RECIPIENT
// set to the recipient sops asks for, when a file needs them.
// A key is only ever held inside an AgeIdentity, which never prints it: not in errors, not
// in logs, not through JSON or util.inspect; a command's output is never logged either.
import { createHmac } from 'node:crypto';
import { readFile as readFileFromDisk } from 'node:fs/promises';
import { join } from 'node:path';
import { bech32 } from '@scure/base';
import { Decrypter, armor, identityToRecipient, type Identity, type Stanza } from 'age-encryption';
import { execa } from 'execa';
import { MooringError } from '../errors.js';
import { SshKeyError, parseSshIdentity, type SshAgeIdentity } from './ssh-age.js';

/** An age key that cannot be used at all: local configuration, so commands exit 2. */
export class AgeKeyError extends MooringError {}

export interface AgeKeyOptions {
  /** The environment to read SOPS_AGE_*, XDG_CONFIG_HOME, HOME and APPDATA from. */
  env: Readonly<Record<string, string | undefined>>;
  /** `--age-key-file`: an explicit key file; unlike the other sources, it must load. */
  ageKeyFile?: string;
  /** Reads a key file as UTF-8 (node:fs by default). */
  readFile?: (path: string) => Promise<string>;
  /** Decides the default location (sops follows Go's os.UserConfigDir); process.platform by default. */
  platform?: NodeJS.Platform;
  /** Runs SOPS_AGE_KEY_CMD / SOPS_AGE_SSH_PRIVATE_KEY_CMD and returns its standard output. */
  runCommand?: (argv: readonly string[], env: Record<string, string>) => Promise<string>;
}

type Secret =
  | { readonly kind: 'native'; readonly key: string }
  | { readonly kind: 'ssh'; readonly ssh: SshAgeIdentity }
  | { readonly kind: 'plugin'; readonly key: string; readonly plugin: string };

/** One age identity and where it was read from. */
export class AgeIdentity {
  /** Its public key (`age1...`, `age1pq1...`, `ssh-ed25519 AAAA...`): what `sops.age[].recipient` lists. */
  readonly recipient: string;
  /** Where it came from, for messages: a file path or an environment variable name. */
  readonly source: string;
  /** Set for an identity mooring loads but cannot use (an age plugin's): why not. */
  declare readonly unsupported?: string;
  readonly #secret: Secret;

  private constructor(secret: Secret, recipient: string, source: string, unsupported?: string) {
    this.#secret = secret;
    this.recipient = recipient;
    this.source = source;
    if (unsupported !== undefined) this.unsupported = unsupported;
  }

  /** Checks an `AGE-SECRET-KEY-1...` or `AGE-SECRET-KEY-PQ-1...` string; the error never repeats it. */
  static async fromSecretKey(secretKey: string, source: string): Promise<AgeIdentity> {
    let recipient: string;
    try {
      recipient = await identityToRecipient(secretKey);
    } catch {
      throw new MooringError(`${source}: not a valid age secret key`, {});
    }
    return new AgeIdentity({ kind: 'native', key: secretKey }, recipient, source);
  }

  /** An age plugin identity (`AGE-PLUGIN-NAME-1...`): loaded as sops loads it, never usable here. */
  static fromPluginIdentity(identity: string, source: string): AgeIdentity {
    let plugin: string;
    try {
      const { prefix } = bech32.decode(identity.toLowerCase() as `${string}1${string}`, false);
      const m = /^age-plugin-([a-z0-9+\-._]+)-$/.exec(prefix);
      if (!m?.[1]) throw new Error('not a plugin identity');
      plugin = m[1];
    } catch {
      throw new MooringError(`${source}: not a valid age plugin identity`, {});
    }
    return new AgeIdentity(
      { kind: 'plugin', key: identity, plugin },
      `age-plugin-${plugin} identity`,
      source,
      `it is an identity of the age plugin age-plugin-${plugin}, and mooring runs no age plugins`,
    );
  }

  /** An SSH private key as age uses it (ssh-ed25519, ssh-rsa); the error never repeats it. */
  static fromSshKey(text: string, source: string): AgeIdentity {
    let ssh: SshAgeIdentity;
    try {
      ssh = parseSshIdentity(text);
    } catch (err) {
      const why = err instanceof SshKeyError ? err.message : 'malformed SSH private key';
      throw new MooringError(`${source}: ${why}`, {});
    }
    return new AgeIdentity({ kind: 'ssh', ssh }, ssh.recipient, source);
  }

  /**
   * Opens an age-encrypted file (binary or ASCII-armored) with this key. Undefined when the
   * file was not encrypted for this key or cannot be opened: the caller knows which file it
   * is and says so.
   */
  async decrypt(ageFile: string | Uint8Array): Promise<Uint8Array | undefined> {
    const secret = this.#secret;
    if (secret.kind === 'plugin') return undefined;
    try {
      const bytes = typeof ageFile === 'string' ? armor.decode(ageFile) : ageFile;
      const decrypter = new Decrypter();
      if (secret.kind === 'native') decrypter.addIdentity(secret.key);
      else {
        const identity: Identity = {
          unwrapFileKey: (stanzas: Stanza[]) => secret.ssh.unwrapFileKey(stanzas),
        };
        decrypter.addIdentity(identity);
      }
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
    const secret = this.#secret;
    const material = secret.kind === 'ssh' ? secret.ssh.secret : secret.key;
    return createHmac('sha256', material).update(`mooring:${purpose}`).digest();
  }

  toJSON(): { recipient: string; source: string } {
    return { recipient: this.recipient, source: this.source };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `AgeIdentity { recipient: '${this.recipient}', source: '${this.source}' }`;
  }
}

/**
 * Reads age identities from the text of one source (a key file as age-keygen writes it,
 * SOPS_AGE_KEY, a command's output). As in sops, lines that are empty or start with # are
 * skipped and every other line must be an identity, or the whole source fails: the error
 * names the source and the line, never the line's content. With `severalPerLine`
 * (SOPS_AGE_KEY) a line may hold several identities separated by spaces.
 */
export async function parseAgeIdentities(
  text: string,
  source: string,
  options: { severalPerLine?: boolean; file?: string } = {},
): Promise<AgeIdentity[]> {
  const where = options.file === undefined ? {} : { file: options.file };
  if (text.startsWith('age-encryption.org/') || text.startsWith('-----BEGIN AGE')) {
    throw new MooringError(`${source} is itself age-encrypted (passphrase-protected)`, where, {
      hint: 'mooring runs unattended and cannot ask for a passphrase: give it the plain key file',
    });
  }
  const identities: AgeIdentity[] = [];
  // Go's bufio.Scanner: lines end at \n, and a \r before it is dropped.
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines.at(-1) === '') lines.pop();
  for (const [index, line] of lines.entries()) {
    if (line === '' || line.startsWith('#')) continue;
    const words = options.severalPerLine ? line.split(/\s+/).filter((w) => w !== '') : [line];
    for (const word of words) {
      const at = `${source} line ${index + 1}`;
      const parse = async (): Promise<AgeIdentity> => {
        if (word.startsWith('AGE-PLUGIN-')) return AgeIdentity.fromPluginIdentity(word, at);
        if (word.startsWith('AGE-SECRET-KEY-PQ-1') || word.startsWith('AGE-SECRET-KEY-1')) {
          return AgeIdentity.fromSecretKey(word, at);
        }
        throw new MooringError(`${at}: not an age identity (expected AGE-SECRET-KEY-1...)`, {});
      };
      identities.push(await parse().catch(rethrowWith(where)));
    }
  }
  return identities;
}

/** Runs a key command as sops does: split like a shell (no shell), stdout is the output. */
type RunCommand = (argv: readonly string[], env: Record<string, string>) => Promise<string>;

interface KeyCommand {
  readonly variable: 'SOPS_AGE_KEY_CMD' | 'SOPS_AGE_SSH_PRIVATE_KEY_CMD';
  readonly command: string;
}

/**
 * The age identities of this process: those every source loaded, the problems of the
 * sources that failed (each naming its source, never a key), and the key commands, which
 * sops runs for each recipient it needs a key for.
 */
export class AgeKeys {
  readonly identities: readonly AgeIdentity[];
  readonly problems: readonly string[];
  readonly #commands: readonly KeyCommand[];
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #run: RunCommand;
  readonly #byRecipient = new Map<string, Promise<{ identities: AgeIdentity[]; problems: string[] }>>();

  constructor(
    identities: readonly AgeIdentity[],
    problems: readonly string[],
    commands: readonly KeyCommand[] = [],
    env: Readonly<Record<string, string | undefined>> = {},
    run: RunCommand = runKeyCommand,
  ) {
    this.identities = dedupe(identities);
    this.problems = problems;
    this.#commands = commands;
    this.#env = env;
    this.#run = run;
  }

  /** Whether any source can still produce a key (loaded ones, or a command). */
  get configured(): boolean {
    return this.identities.length > 0 || this.#commands.length > 0;
  }

  /**
   * The identities to try on a file's entry for `recipient`: the loaded ones, then what the
   * key commands print for it (run once per recipient, as long as they succeed).
   */
  async forRecipient(recipient: string): Promise<{ identities: AgeIdentity[]; problems: string[] }> {
    if (this.#commands.length === 0)
      return { identities: [...this.identities], problems: [...this.problems] };
    let fromCommands = this.#byRecipient.get(recipient);
    if (fromCommands === undefined) {
      fromCommands = this.#runCommands(recipient);
      this.#byRecipient.set(recipient, fromCommands);
      // A command that failed runs again next time; a good answer is kept.
      void fromCommands.then((r) => {
        if (r.problems.length > 0) this.#byRecipient.delete(recipient);
      });
    }
    const { identities, problems } = await fromCommands;
    return {
      identities: dedupe([...this.identities, ...identities]),
      problems: [...this.problems, ...problems],
    };
  }

  async #runCommands(recipient: string): Promise<{ identities: AgeIdentity[]; problems: string[] }> {
    const identities: AgeIdentity[] = [];
    const problems: string[] = [];
    const env = { ...definedOnly(this.#env), SOPS_AGE_RECIPIENT: recipient };
    for (const { variable, command } of this.#commands) {
      const argv = splitCommand(command);
      if (argv === undefined || argv.length === 0) {
        problems.push(`${variable} is not a command mooring can run (unbalanced quotes?)`);
        continue;
      }
      let output: string;
      try {
        output = await this.#run(argv, env);
      } catch (err) {
        problems.push(`${variable} failed: ${commandFailure(err)}`);
        continue;
      }
      try {
        if (variable === 'SOPS_AGE_SSH_PRIVATE_KEY_CMD') {
          identities.push(AgeIdentity.fromSshKey(output, `the output of ${variable}`));
        } else {
          identities.push(...(await parseAgeIdentities(output, `the output of ${variable}`)));
        }
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
    }
    return { identities, problems };
  }
}

/**
 * Every age identity configured for this process, in the order sops reads them. A source
 * that cannot be read or parsed becomes a problem, not an error; only `--age-key-file`
 * (asked for explicitly) must load, and when every source failed and nothing else can
 * give a key, that is an AgeKeyError too (local configuration, exit code 2).
 */
export async function loadAgeKeys(options: AgeKeyOptions): Promise<AgeKeys> {
  const { env } = options;
  const readFile = options.readFile ?? ((path: string) => readFileFromDisk(path, 'utf8'));
  const found: AgeIdentity[] = [];
  const problems: string[] = [];

  /** Reads one source; a missing optional file is no problem. */
  const fromFile = async (
    path: string,
    source: string,
    parse: (text: string) => Promise<AgeIdentity[]>,
    missingIsFine: boolean,
  ): Promise<void> => {
    // A key pasted where a path belongs must not be echoed back into a message.
    if (/AGE-SECRET-KEY-|PRIVATE KEY-----/i.test(path)) {
      const what = /AGE-SECRET-KEY-/i.test(path) ? 'an age key' : 'a private key';
      problems.push(`${source} holds ${what}, not the path of a key file`);
      return;
    }
    let text: string;
    try {
      text = await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (missingIsFine && code === 'ENOENT') return;
      const why =
        code === 'ENOENT'
          ? 'it does not exist'
          : code === 'EACCES'
            ? 'permission denied'
            : (code ?? 'unreadable');
      problems.push(`cannot read ${path} (given by ${source}): ${why}`);
      return;
    }
    try {
      found.push(...(await parse(text)));
    } catch (err) {
      problems.push(err instanceof MooringError ? err.describe() : String(err));
    }
  };

  if (options.ageKeyFile) {
    const path = options.ageKeyFile;
    const before = problems.length;
    await fromFile(path, '--age-key-file', (t) => parseAgeIdentities(t, path, { file: path }), false);
    if (problems.length > before) {
      throw new AgeKeyError(`--age-key-file: ${problems.slice(before).join('; ')}`, { file: path });
    }
  }

  // SSH keys, as sops looks for them first.
  const sshFile = env.SOPS_AGE_SSH_PRIVATE_KEY_FILE;
  if (sshFile !== undefined) {
    await fromFile(
      sshFile,
      'SOPS_AGE_SSH_PRIVATE_KEY_FILE',
      async (t) => [AgeIdentity.fromSshKey(t, sshFile)],
      false,
    );
  }
  if (env.HOME) {
    for (const name of ['id_ed25519', 'id_rsa']) {
      const path = join(env.HOME, '.ssh', name);
      await fromFile(path, `sops' default SSH key`, async (t) => [AgeIdentity.fromSshKey(t, path)], true);
    }
  }

  const inline = env.SOPS_AGE_KEY;
  if (inline) {
    try {
      found.push(...(await parseAgeIdentities(inline, 'SOPS_AGE_KEY', { severalPerLine: true })));
    } catch (err) {
      problems.push(err instanceof MooringError ? err.describe() : String(err));
    }
  }
  const keyFile = env.SOPS_AGE_KEY_FILE;
  if (keyFile) {
    await fromFile(
      keyFile,
      'SOPS_AGE_KEY_FILE',
      (t) => parseAgeIdentities(t, keyFile, { file: keyFile }),
      false,
    );
  }
  const defaultFile = defaultKeyFile(env, options.platform ?? process.platform);
  if (defaultFile) {
    await fromFile(defaultFile, "sops' default key file", (t) => parseAgeIdentities(t, defaultFile), true);
  }

  const commands: KeyCommand[] = [];
  for (const variable of ['SOPS_AGE_KEY_CMD', 'SOPS_AGE_SSH_PRIVATE_KEY_CMD'] as const) {
    const command = env[variable];
    if (command) commands.push({ variable, command });
  }
  const keys = new AgeKeys(found, problems, commands, env, options.runCommand ?? runKeyCommand);
  if (!keys.configured && problems.length > 0) {
    throw new AgeKeyError(
      `no age key could be loaded: ${problems.join('; ')}`,
      {},
      {
        hint: 'fix the key file or variable named, or remove it',
      },
    );
  }
  return keys;
}

/** The identities alone (what tests and simple callers need). */
export async function loadAgeIdentities(options: AgeKeyOptions): Promise<AgeIdentity[]> {
  return [...(await loadAgeKeys(options)).identities];
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

/**
 * Splits a command line as sops does (github.com/google/shlex): words separated by
 * whitespace, single quotes literal, double quotes with backslash escapes, a backslash
 * escaping the next character, `#` starting a comment. Undefined for an unclosed quote.
 */
export function splitCommand(command: string): string[] | undefined {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const push = (c: string): void => {
    word = (word ?? '') + c;
  };
  while (i < command.length) {
    const c = command[i] ?? '';
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i += 1;
    } else if (c === '#' && word === undefined) {
      break;
    } else if (c === '\\') {
      if (i + 1 >= command.length) return undefined;
      push(command[i + 1] ?? '');
      i += 2;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end === -1) return undefined;
      push(command.slice(i + 1, end));
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      for (;;) {
        if (j >= command.length) return undefined;
        const d = command[j] ?? '';
        if (d === '"') break;
        if (d === '\\' && j + 1 < command.length && /["\\$`\n]/.test(command[j + 1] ?? '')) {
          s += command[j + 1];
          j += 2;
        } else {
          s += d;
          j += 1;
        }
      }
      push(s);
      i = j + 1;
    } else {
      push(c);
      i += 1;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

async function runKeyCommand(argv: readonly string[], env: Record<string, string>): Promise<string> {
  const [file = '', ...args] = argv;
  // Its output holds keys: kept in memory, never logged; its stderr is the user's terminal's in sops,
  // here it is dropped so that nothing it prints reaches a log.
  const result = await execa(file, args, {
    env,
    extendEnv: false,
    stdin: 'ignore',
    stderr: 'ignore',
    timeout: 60_000,
    stripFinalNewline: false,
  });
  return result.stdout;
}

function commandFailure(err: unknown): string {
  const e = err as { exitCode?: number; code?: string; timedOut?: boolean };
  if (e.timedOut) return 'it ran for more than 60 seconds';
  if (e.code === 'ENOENT') return 'the command was not found';
  if (typeof e.exitCode === 'number') return `it exited with code ${e.exitCode}`;
  return 'it could not be run';
}

function definedOnly(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

function dedupe(identities: readonly AgeIdentity[]): AgeIdentity[] {
  const seen = new Set<string>();
  return identities.filter((id) => !seen.has(id.recipient) && seen.add(id.recipient));
}

function rethrowWith(where: { file?: string }): (err: unknown) => never {
  return (err) => {
    if (err instanceof MooringError) throw new MooringError(err.message, { ...err.context, ...where });
    throw err;
  };
}
