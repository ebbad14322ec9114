// age's SSH identities (filippo.io/age/agessh), as sops uses them for
// SOPS_AGE_SSH_PRIVATE_KEY_FILE, SOPS_AGE_SSH_PRIVATE_KEY_CMD, ~/.ssh/id_ed25519 and
// ~/.ssh/id_rsa: an ssh-ed25519 or ssh-rsa private key opens the age stanzas written for
// its public key. The age-encryption package does not read SSH keys, so this module reads
// them (OpenSSH and PEM formats) and unwraps the stanzas with node:crypto, following the
// age specification: X25519 with a tweak for ed25519, RSA-OAEP-SHA256 for RSA.
import {
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  constants,
  diffieHellman,
  hkdfSync,
  privateDecrypt,
  type KeyObject,
} from 'node:crypto';

/** Why an SSH private key cannot be used; the message never holds the key. */
export class SshKeyError extends Error {}

const ED25519_LABEL = 'age-encryption.org/v1/ssh-ed25519';
const RSA_LABEL = 'age-encryption.org/v1/ssh-rsa';
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');

/** One stanza of an age header: its arguments (the type first) and its body. */
export interface AgeStanza {
  readonly args: readonly string[];
  readonly body: Uint8Array;
}

export interface SshAgeIdentity {
  readonly type: 'ssh-ed25519' | 'ssh-rsa';
  /** `ssh-ed25519 AAAA...` / `ssh-rsa AAAA...`, as in authorized_keys. */
  readonly recipient: string;
  /** The private material, for keyed digests; never printed. */
  readonly secret: Buffer;
  /** The file key, null when no stanza is for this key; throws when one is but does not open. */
  unwrapFileKey(stanzas: readonly AgeStanza[]): Uint8Array | null;
}

/** Reads an SSH private key (OpenSSH, PKCS#1 or PKCS#8 PEM) as an age identity. */
export function parseSshIdentity(text: string): SshAgeIdentity {
  if (/-----BEGIN OPENSSH PRIVATE KEY-----/.test(text)) return fromOpenSsh(text);
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw new SshKeyError('the SSH key is passphrase-protected, and mooring cannot ask for a passphrase');
  }
  if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(text)) {
    throw new SshKeyError('not an SSH private key (expected an OpenSSH or PEM private key)');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch {
    throw new SshKeyError('malformed SSH private key');
  }
  const jwk = key.export({ format: 'jwk' });
  if (key.asymmetricKeyType === 'ed25519' && jwk.d && jwk.x) {
    return ed25519Identity(Buffer.from(jwk.d, 'base64url'), Buffer.from(jwk.x, 'base64url'));
  }
  if (key.asymmetricKeyType === 'rsa' && jwk.n && jwk.e) {
    return rsaIdentity(key, Buffer.from(jwk.n, 'base64url'), Buffer.from(jwk.e, 'base64url'));
  }
  throw new SshKeyError(
    `unsupported SSH key type ${key.asymmetricKeyType ?? 'unknown'} (age reads ssh-ed25519 and ssh-rsa)`,
  );
}

// ---- OpenSSH private key format (PROTOCOL.key) ---------------------------------------

class Reader {
  #at = 0;
  constructor(private readonly buf: Buffer) {}
  uint32(): number {
    if (this.#at + 4 > this.buf.length) throw new SshKeyError('malformed SSH private key');
    const v = this.buf.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }
  bytes(): Buffer {
    const n = this.uint32();
    if (this.#at + n > this.buf.length) throw new SshKeyError('malformed SSH private key');
    const v = this.buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return v;
  }
  string(): string {
    return this.bytes().toString('latin1');
  }
}

function fromOpenSsh(text: string): SshAgeIdentity {
  const body = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(
    text,
  )?.[1];
  const raw = Buffer.from((body ?? '').replace(/\s+/g, ''), 'base64');
  const magic = Buffer.from('openssh-key-v1\0', 'latin1');
  if (!raw.subarray(0, magic.length).equals(magic)) throw new SshKeyError('malformed SSH private key');
  const r = new Reader(raw.subarray(magic.length));
  const cipher = r.string();
  r.string(); // kdf name
  r.bytes(); // kdf options
  if (cipher !== 'none') {
    throw new SshKeyError('the SSH key is passphrase-protected, and mooring cannot ask for a passphrase');
  }
  if (r.uint32() !== 1) throw new SshKeyError('the SSH key file holds more than one key');
  r.bytes(); // the public key, repeated in the private section
  const p = new Reader(r.bytes());
  if (p.uint32() !== p.uint32()) throw new SshKeyError('malformed SSH private key');
  const type = p.string();
  if (type === 'ssh-ed25519') {
    const pub = p.bytes();
    const priv = p.bytes();
    if (pub.length !== 32 || priv.length !== 64) throw new SshKeyError('malformed SSH private key');
    return ed25519Identity(Buffer.from(priv.subarray(0, 32)), Buffer.from(pub));
  }
  if (type === 'ssh-rsa') {
    const [n, e, d, iqmp, q1, q2] = [p.bytes(), p.bytes(), p.bytes(), p.bytes(), p.bytes(), p.bytes()];
    const big = (b: Buffer): bigint => BigInt(`0x${b.toString('hex') || '0'}`);
    const unsigned = (v: bigint): Buffer => {
      const hex = v.toString(16);
      return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
    };
    const [bd, bp, bq] = [big(d), big(q1), big(q2)];
    const b64 = (v: bigint): string => unsigned(v).toString('base64url');
    let key: KeyObject;
    try {
      key = createPrivateKey({
        key: {
          kty: 'RSA',
          n: b64(big(n)),
          e: b64(big(e)),
          d: b64(bd),
          p: b64(bp),
          q: b64(bq),
          dp: b64(bd % (bp - 1n)),
          dq: b64(bd % (bq - 1n)),
          qi: b64(big(iqmp)),
        },
        format: 'jwk',
      });
    } catch {
      throw new SshKeyError('malformed SSH private key');
    }
    return rsaIdentity(key, unsigned(big(n)), unsigned(big(e)));
  }
  throw new SshKeyError(`unsupported SSH key type ${type} (age reads ssh-ed25519 and ssh-rsa)`);
}

// ---- the identities -------------------------------------------------------------------

function sshString(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** An SSH mpint: big-endian, no leading zero bytes, one 0x00 when the top bit is set. */
function sshMpint(unsignedBytes: Buffer): Buffer {
  let i = 0;
  while (i < unsignedBytes.length - 1 && unsignedBytes[i] === 0) i += 1;
  const b = unsignedBytes.subarray(i);
  return sshString((b[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

/** age's stanza tag: the first four bytes of SHA-256 over the SSH public key, base64 without padding. */
function tagOf(wire: Buffer): string {
  return createHash('sha256').update(wire).digest().subarray(0, 4).toString('base64').replace(/=+$/, '');
}

function x25519(scalar: Buffer, point: Buffer): Buffer {
  const privateKey = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8, scalar]),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = createPublicKey({
    key: Buffer.concat([X25519_SPKI, point]),
    format: 'der',
    type: 'spki',
  });
  return diffieHellman({ privateKey, publicKey });
}

function x25519Public(scalar: Buffer): Buffer {
  const privateKey = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8, scalar]),
    format: 'der',
    type: 'pkcs8',
  });
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  return Buffer.from(jwk.x ?? '', 'base64url');
}

function ed25519Identity(seed: Buffer, publicKey: Buffer): SshAgeIdentity {
  const wire = Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(publicKey)]);
  const tag = tagOf(wire);
  // The X25519 scalar of an Ed25519 key: SHA-512 of the seed, first half (X25519 clamps it).
  const scalar = createHash('sha512').update(seed).digest().subarray(0, 32);
  const ourPublic = x25519Public(scalar);
  return {
    type: 'ssh-ed25519',
    recipient: `ssh-ed25519 ${wire.toString('base64')}`,
    secret: Buffer.from(seed),
    unwrapFileKey(stanzas) {
      for (const s of stanzas) {
        if (s.args[0] !== 'ssh-ed25519' || s.args[1] !== tag) continue;
        const share = Buffer.from(s.args[2] ?? '', 'base64');
        if (s.args.length !== 3 || share.length !== 32 || s.body.length !== 32) {
          throw new Error('invalid ssh-ed25519 stanza');
        }
        const tweak = Buffer.from(hkdfSync('sha256', Buffer.alloc(0), wire, ED25519_LABEL, 32));
        const shared = x25519(tweak, x25519(scalar, share));
        const salt = Buffer.concat([share, ourPublic]);
        const wrappingKey = Buffer.from(hkdfSync('sha256', shared, salt, ED25519_LABEL, 32));
        return chachaOpen(wrappingKey, Buffer.from(s.body));
      }
      return null;
    },
  };
}

function rsaIdentity(key: KeyObject, n: Buffer, e: Buffer): SshAgeIdentity {
  const wire = Buffer.concat([sshString(Buffer.from('ssh-rsa')), sshMpint(e), sshMpint(n)]);
  const tag = tagOf(wire);
  return {
    type: 'ssh-rsa',
    recipient: `ssh-rsa ${wire.toString('base64')}`,
    secret: key.export({ format: 'der', type: 'pkcs8' }),
    unwrapFileKey(stanzas) {
      for (const s of stanzas) {
        if (s.args[0] !== 'ssh-rsa' || s.args[1] !== tag) continue;
        if (s.args.length !== 2) throw new Error('invalid ssh-rsa stanza');
        const fileKey = privateDecrypt(
          {
            key,
            padding: constants.RSA_PKCS1_OAEP_PADDING,
            oaepHash: 'sha256',
            oaepLabel: Buffer.from(RSA_LABEL),
          },
          Buffer.from(s.body),
        );
        if (fileKey.length !== 16) throw new Error('invalid ssh-rsa stanza');
        return new Uint8Array(fileKey);
      }
      return null;
    },
  };
}

function chachaOpen(key: Buffer, sealed: Buffer): Uint8Array {
  const decipher = createDecipheriv('chacha20-poly1305', key, Buffer.alloc(12), { authTagLength: 16 });
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return new Uint8Array(
    Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]),
  );
}
