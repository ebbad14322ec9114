// Reads an OpenSSH known_hosts file (`--git-known-hosts-file`) and answers the one question
// the SSH transport asks: is this the key of this host? Plain and hashed (`|1|salt|hash`)
// host names, `[host]:port` for other ports than 22, `*`/`?` patterns, `!` negations and
// `@revoked` markers read as OpenSSH reads them. `@cert-authority` lines are skipped: mooring
// trusts host keys, not host certificates.
import { createHmac } from 'node:crypto';

export interface KnownHostKey {
  /** `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ... */
  type: string;
  /** The key blob, as the server sends it. */
  blob: Buffer;
  revoked: boolean;
  /** 1-based line in the file, for messages. */
  line: number;
}

export interface KnownHosts {
  /** Keys listed for `host` on `port` (revoked ones included, marked). */
  keysFor(host: string, port: number): KnownHostKey[];
}

interface Entry {
  patterns: string[];
  key: KnownHostKey;
}

/** Parses the text of a known_hosts file; lines that are not entries are skipped. */
export function parseKnownHosts(text: string): KnownHosts {
  const entries: Entry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]?.startsWith('@')) {
      const marker = fields.shift();
      if (marker !== '@revoked') return; // @cert-authority, or a marker we do not know
      revoked = true;
    }
    const [hosts, type, base64] = fields;
    if (!hosts || !type || !base64 || !/^[A-Za-z0-9+/]+=*$/.test(base64)) return;
    entries.push({
      patterns: hosts.split(','),
      key: { type, blob: Buffer.from(base64, 'base64'), revoked, line: i + 1 },
    });
  });
  return {
    keysFor(host, port) {
      const name = port === 22 ? host : `[${host}]:${port}`;
      return entries.filter((e) => matchesHost(e.patterns, name)).map((e) => e.key);
    },
  };
}

/** OpenSSH's rule: some pattern matches and no negated pattern does. */
function matchesHost(patterns: string[], name: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matchOne(p.slice(1), name)) return false;
    } else if (matchOne(p, name)) {
      matched = true;
    }
  }
  return matched;
}

function matchOne(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  const re = new RegExp(
    `^${pattern
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('')}$`,
    'i',
  );
  return re.test(name);
}

/** The algorithms a server may sign with for a known key type (RSA keys sign with SHA-2 too). */
export function hostKeyAlgorithms(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}
