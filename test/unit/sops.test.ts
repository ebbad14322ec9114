// How mooring reads a SOPS file: which values were encrypted, what the MAC covers, and how
// every malformed, unsupported or foreign file is refused with the file and field named.
// Files here are sealed in-process (age-encryption for the data key, node:crypto for the
// values) so that each rule can be shown on its own; test/integration/sops.test.ts checks
// the same behaviour against files written by the real sops.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { Encrypter, armor, generateIdentity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, test } from 'vitest';
import { MooringError } from '../../src/errors.js';
import { AgeIdentity } from '../../src/resolve/age-key.js';
import {
  computeSopsMac,
  decryptSops,
  GoRegex,
  readQuotedV3,
  parseEncryptedValue,
  readMetadata,
  shouldBeEncrypted,
  type MacLeaf,
} from '../../src/resolve/sops.js';

const FILE = 'clusters/eu-1/secrets.sops.yaml';
const LASTMODIFIED = '2025-03-04T05:06:07Z';

/** Encrypts one value the way sops does: AES-256-GCM, 32-byte IV, the key path as additional data. */
function seal(plaintext: string, dataKey: Buffer, aad: string, type: string): string {
  const iv = randomBytes(32);
  const cipher = createCipheriv('aes-256-gcm', dataKey, iv);
  cipher.setAAD(Buffer.from(aad));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const b64 = (b: Buffer): string => b.toString('base64');
  return `ENC[AES256_GCM,data:${b64(data)},iv:${b64(iv)},tag:${b64(cipher.getAuthTag())},type:${type}]`;
}

interface Sealer {
  identity: AgeIdentity;
  dataKey: Buffer;
  /** The `sops:` block for a file whose values feed the MAC as `leaves`. */
  metadata(leaves: MacLeaf[], extra?: string): string;
}

async function sealer(): Promise<Sealer> {
  const secret = await generateIdentity();
  const recipient = await identityToRecipient(secret);
  const dataKey = randomBytes(32);
  const encrypter = new Encrypter();
  encrypter.addRecipient(recipient);
  const enc = armor.encode(await encrypter.encrypt(dataKey));
  return {
    identity: await AgeIdentity.fromSecretKey(secret, 'test key'),
    dataKey,
    metadata(leaves, extra = '') {
      const mac = seal(
        computeSopsMac(leaves, extra.includes('mac_only_encrypted: true')),
        dataKey,
        LASTMODIFIED,
        'str',
      );
      const armored = enc
        .trim()
        .split('\n')
        .map((l) => `        ${l}`)
        .join('\n');
      return `sops:\n  age:\n    - recipient: ${recipient}\n      enc: |\n${armored}\n  lastmodified: "${LASTMODIFIED}"\n  mac: ${mac}\n${extra}  version: 3.13.3\n`;
    },
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

const sha512 = (s: Buffer | string): string => createHash('sha512').update(s).digest('hex').toUpperCase();

describe('the MAC', () => {
  const leaves: MacLeaf[] = [
    { bytes: 's3cr3t', encrypted: true },
    { bytes: '5432', encrypted: false },
    { bytes: 'True', encrypted: true },
  ];

  test('is SHA-512 over every value as sops prints it, in document order, as uppercase hex', () => {
    expect(computeSopsMac(leaves, false)).toBe(sha512('s3cr3t5432True'));
    expect(computeSopsMac([...leaves].reverse(), false)).not.toBe(computeSopsMac(leaves, false));
  });

  test('with mac_only_encrypted covers the encrypted values only, after sha256("sops")', () => {
    const prefix = Buffer.from('8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69', 'hex');
    expect(computeSopsMac(leaves, true)).toBe(sha512(Buffer.concat([prefix, Buffer.from('s3cr3tTrue')])));
    expect(computeSopsMac([], true)).not.toBe(computeSopsMac([], false));
  });
});

describe('which values sops encrypted', () => {
  const keys = ['database', 'password'];

  test('by default every value, except below a key ending in _unencrypted', () => {
    const rule = { kind: 'unencrypted_suffix', suffix: '_unencrypted' } as const;
    expect(shouldBeEncrypted(keys, rule)).toBe(true);
    expect(shouldBeEncrypted(['config_unencrypted', 'port'], rule)).toBe(false);
  });

  test('with encrypted_suffix only values below a key ending in it', () => {
    const rule = { kind: 'encrypted_suffix', suffix: '_secret' } as const;
    expect(shouldBeEncrypted(keys, rule)).toBe(false);
    expect(shouldBeEncrypted(['db_secret', 'password'], rule)).toBe(true);
  });

  test('with a regex rule by any key on the path matching it, unanchored', () => {
    expect(
      shouldBeEncrypted(['stringData', 'user'], {
        kind: 'encrypted_regex',
        regex: new GoRegex('^(data|stringData)$'),
      }),
    ).toBe(true);
    expect(
      shouldBeEncrypted(['metadata', 'name'], {
        kind: 'encrypted_regex',
        regex: new GoRegex('^(data|stringData)$'),
      }),
    ).toBe(false);
    expect(
      shouldBeEncrypted(['public_url'], { kind: 'unencrypted_regex', regex: new GoRegex('public') }),
    ).toBe(false);
  });
});

describe('an encrypted value', () => {
  const good =
    'ENC[AES256_GCM,data:Ag==,iv:kUCuO7LA3plqs7z7MQ/CRDfe4EgQAtueX6mMSa/bLSU=,tag:MkWYzRNSvuZ3tneiw6+F9A==,type:int]';

  test('has data, an IV, a 16-byte tag and a type', () => {
    const v = parseEncryptedValue(good);
    expect(v?.type).toBe('int');
    expect(v?.data).toEqual(Buffer.from([2]));
    expect(v?.iv.length).toBe(32);
    expect(v?.tag.length).toBe(16);
  });

  test.each([
    ['a short tag', good.replace('tag:MkWYzRNSvuZ3tneiw6+F9A==', 'tag:MkWYzRNS')],
    ['unpadded base64', good.replace('data:Ag==', 'data:Ag')],
    ['no type', good.replace(',type:int', '')],
    ['another cipher', good.replace('AES256_GCM', 'AES128_GCM')],
    ['trailing text', `${good} # edited`],
  ])('is malformed with %s', (_, text) => {
    expect(parseEncryptedValue(text)).toBeUndefined();
  });
});

describe('the sops metadata', () => {
  const base = {
    age: [{ recipient: 'age1abc', enc: '-----BEGIN AGE ENCRYPTED FILE-----' }],
    lastmodified: LASTMODIFIED,
    mac: 'ENC[...]',
  };

  test('without any crypt rule means unencrypted_suffix: _unencrypted', () => {
    expect(readMetadata(base, FILE).rule).toEqual({ kind: 'unencrypted_suffix', suffix: '_unencrypted' });
  });

  test('reads mac_only_encrypted leniently, as sops does', () => {
    expect(readMetadata({ ...base, mac_only_encrypted: 'true' }, FILE).macOnlyEncrypted).toBe(true);
    expect(readMetadata({ ...base, mac_only_encrypted: true }, FILE).macOnlyEncrypted).toBe(true);
  });

  test('evaluates encrypted_regex as Go does (RE2), not as a JavaScript RegExp', () => {
    const meta = readMetadata({ ...base, encrypted_regex: '^(?i)password$' }, FILE);
    expect(meta.rule.kind === 'encrypted_regex' && meta.rule.regex.test('PASSWORD')).toBe(true);
  });

  test.each([
    ['^(?i)password$', 'PassWord', true],
    ['(?i:pass)word', 'PASSword', true],
    ['(?i:pass)word', 'passWORD', false],
    ['\\x{e9}', 'clé', true],
    ['^.$', '🔐', true],
    ['^.$', 'é', true],
    ['a.b', 'a\nb', false],
    ['(?s)a.b', 'a\nb', true],
    ['\\s', 'a\u00a0b', false],
    ['\\s', 'a\tb', true],
    ['^[[:upper:]]+$', 'PASSWORD', true],
    ['\\Qa.b\\E', 'axb', false],
    ['\\Apassword\\z', 'password', true],
    ['^\\p{Lu}', 'Éa', true],
    ['(?P<p>pass)word', 'password', true],
  ])('the Go regex %s matching %j is %s', (source, key, expected) => {
    const regex = new GoRegex(source);
    expect(regex.valid).toBe(true);
    expect(regex.test(key)).toBe(expected);
  });

  test('an expression Go cannot compile matches nothing, as sops ignores the error', () => {
    const regex = new GoRegex('(?=password)');
    expect(regex.valid).toBe(false);
    expect(regex.test('password')).toBe(false);
  });

  test('takes the age recipients of a single key group', () => {
    const { age: _, ...rest } = base;
    expect(readMetadata({ ...rest, key_groups: [{ age: base.age }] }, FILE).age).toEqual(base.age);
  });

  test.each([
    [
      'a file encrypted for pgp only',
      { pgp: [{ fp: 'ABC', enc: 'x' }] },
      'sops.age',
      /only for pgp; mooring decrypts/,
    ],
    [
      'a file encrypted for kms only',
      { kms: [{ arn: 'arn:aws:kms:x', enc: 'x' }] },
      'sops.age',
      /only for kms/,
    ],
    [
      'Shamir secret sharing',
      { key_groups: [{ age: base.age }, { age: base.age }], shamir_threshold: 2 },
      'sops.key_groups',
      /Shamir/,
    ],
  ])('refuses %s', (_, keys, field, message) => {
    const { age: _age, ...rest } = base;
    const err = (() => {
      try {
        readMetadata({ ...rest, ...keys }, FILE);
      } catch (e) {
        return e as MooringError;
      }
      throw new Error('accepted');
    })();
    expect(err.message).toMatch(message);
    expect(err.context).toEqual({ file: FILE, field });
  });

  test.each([
    ['two crypt rules', { unencrypted_suffix: '_u', encrypted_regex: '^x$' }, 'sops', /more than one of/],
    [
      'a comment rule',
      { encrypted_comment_regex: 'sops:enc' },
      'sops.encrypted_comment_regex',
      /chooses the encrypted values by their YAML comments, which mooring does not support/,
    ],
    ['no lastmodified', { lastmodified: undefined }, 'sops.lastmodified', /missing/],
    [
      'a mac_only_encrypted that is no boolean',
      { mac_only_encrypted: 'maybe' },
      'sops.mac_only_encrypted',
      /true or false/,
    ],
  ])('refuses %s', (_, extra, field, message) => {
    expect(() => readMetadata({ ...base, ...extra }, FILE)).toThrow(message);
    try {
      readMetadata({ ...base, ...extra }, FILE);
    } catch (e) {
      expect((e as MooringError).context).toEqual({ file: FILE, field });
    }
  });
});

describe('decrypting', () => {
  let s: Sealer;
  beforeAll(async () => {
    s = await sealer();
  });

  test('opens a sealed file and hands back its values without the sops key', async () => {
    const text = [
      `password: ${seal('s3cr3t', s.dataKey, 'password:', 'str')}`,
      `port: ${seal('5432', s.dataKey, 'port:', 'int')}`,
      'region_unencrypted: eu-west-1',
      `hosts:\n  - ${seal('a.example.com', s.dataKey, 'hosts:', 'str')}`,
      s.metadata([
        { bytes: 's3cr3t', encrypted: true },
        { bytes: '5432', encrypted: true },
        { bytes: 'eu-west-1', encrypted: false },
        { bytes: 'a.example.com', encrypted: true },
      ]),
    ].join('\n');
    expect(await decryptSops(text, FILE, [s.identity])).toEqual({
      password: 's3cr3t',
      port: 5432,
      region_unencrypted: 'eu-west-1',
      hosts: ['a.example.com'],
    });
  });

  test('skips a comment sops wrote into an encrypted list, outside the MAC and the values', async () => {
    const text = [
      `env:\n  - ${seal(' the first variable', s.dataKey, 'env:', 'comment')}`,
      `  - name: ${seal('A', s.dataKey, 'env:name:', 'str')}`,
      s.metadata([{ bytes: 'A', encrypted: true }]),
    ].join('\n');
    expect(await decryptSops(text, FILE, [s.identity])).toEqual({ env: [{ name: 'A' }] });
  });

  test('an encrypted list comment that does not authenticate is refused, naming the item', async () => {
    const comment = seal(' moved', s.dataKey, 'other:', 'comment');
    const text = `env:\n  - ${comment}\n${s.metadata([])}`;
    const err = await refusal(decryptSops(text, FILE, [s.identity]));
    expect(err.message).toMatch(/encrypted comment was modified, or moved here/);
    expect(err.context).toEqual({ file: FILE, field: 'env[0]' });
  });

  test('merges a `<<` merge key as helm would, hashing it as sops does (a key named <<)', async () => {
    const text = [
      'prod:',
      '  !!merge <<:',
      `    user: ${seal('app', s.dataKey, 'prod:<<:user:', 'str')}`,
      `    password: ${seal('base-pw', s.dataKey, 'prod:<<:password:', 'str')}`,
      `  password: ${seal('prod-pw', s.dataKey, 'prod:password:', 'str')}`,
      s.metadata([
        { bytes: 'app', encrypted: true },
        { bytes: 'base-pw', encrypted: true },
        { bytes: 'prod-pw', encrypted: true },
      ]),
    ].join('\n');
    expect(await decryptSops(text, FILE, [s.identity])).toEqual({
      prod: { user: 'app', password: 'prod-pw' },
    });
  });

  test('a merge key holding a scalar is refused, naming it', async () => {
    const text = `prod:\n  <<: ${seal('x', s.dataKey, 'prod:<<:', 'str')}\n${s.metadata([{ bytes: 'x', encrypted: true }])}`;
    const err = await refusal(decryptSops(text, FILE, [s.identity]));
    expect(err.message).toMatch(/merge key \(<<\) whose value is not a map/);
    expect(err.context).toEqual({ file: FILE, field: 'prod.<<' });
  });

  test('a file ending in --- has a second document with only sops in it, which is no value', async () => {
    const meta = s.metadata([{ bytes: 'v', encrypted: true }]);
    const text = `a: ${seal('v', s.dataKey, 'a:', 'str')}\n${meta}---\n${meta}`;
    expect(await decryptSops(text, FILE, [s.identity])).toEqual({ a: 'v' });
  });

  test('values in a second document are refused, naming the document', async () => {
    const meta = s.metadata([
      { bytes: 'v', encrypted: true },
      { bytes: 'w', encrypted: true },
    ]);
    const text = `a: ${seal('v', s.dataKey, 'a:', 'str')}\n${meta}---\nb: ${seal('w', s.dataKey, 'b:', 'str')}\n${meta}`;
    const err = await refusal(decryptSops(text, FILE, [s.identity]));
    expect(err.message).toMatch(/^holds values in YAML document 2; a values file is one document/);
    expect(err.context).toEqual({ file: FILE });
  });

  test('reads U+2028 and U+2029 in quoted and literal values as sops (yaml.v3) does', async () => {
    const text = [
      "a_unencrypted: 'x\u2028    y'",
      'b_unencrypted: "p \u2029  q"',
      'c_unencrypted: |-',
      '    one',
      '    two\u2028    three',
      s.metadata([
        { bytes: 'x\u2028y', encrypted: false },
        { bytes: 'p\u2029q', encrypted: false },
        { bytes: 'one\ntwo\u2028three', encrypted: false },
      ]),
    ].join('\n');
    expect(await decryptSops(text, FILE, [s.identity])).toEqual({
      a_unencrypted: 'x\u2028y',
      b_unencrypted: 'p\u2029q',
      c_unencrypted: 'one\ntwo\u2028three',
    });
  });

  test.each([
    ['an unquoted value', 'a_unencrypted: x\u2028y\n', 'a_unencrypted', /in an unquoted value/],
    ['a folded block', 'a_unencrypted: >\n  x\u2028  y\n', 'a_unencrypted', /in a folded block/],
    ['a comment', '# note\u2028 here\na_unencrypted: x\n', undefined, /^line 1 holds a line separator/],
  ])('refuses a line separator in %s, naming the field', async (_, yaml, field, message) => {
    const err = await refusal(decryptSops(`${yaml}${s.metadata([])}`, FILE, [s.identity]));
    expect(err.message).toMatch(message);
    expect(err.context).toEqual(field === undefined ? { file: FILE } : { file: FILE, field });
  });

  test('a key named __proto__ is an ordinary key', async () => {
    const text = `__proto__:\n  polluted: ${seal('yes', s.dataKey, '__proto__:polluted:', 'str')}\n${s.metadata([{ bytes: 'yes', encrypted: true }])}`;
    const doc = await decryptSops(text, FILE, [s.identity]);
    expect(Object.keys(doc)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(doc)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('timestamps and bytes decrypt to text, hashed as sops hashes them', async () => {
    const text = [
      `since: ${seal('2024-01-02T03:04:05.5+02:00', s.dataKey, 'since:', 'time')}`,
      `blob: ${seal('raw', s.dataKey, 'blob:', 'bytes')}`,
      s.metadata([
        { bytes: '2024-01-02T03:04:05.5+02:00', encrypted: true },
        { bytes: 'raw', encrypted: true },
      ]),
    ].join('\n');
    expect(await decryptSops(text, FILE, [s.identity])).toEqual({
      since: '2024-01-02T03:04:05.5+02:00',
      blob: 'raw',
    });
  });

  test.each([
    [
      'a YAML alias',
      'a_unencrypted: &x 1\nb_unencrypted: *x\n',
      'b_unencrypted',
      /aliases are not supported/,
    ],
    [
      'a YAML tag',
      'a_unencrypted: !!binary aGk=\n',
      'a_unencrypted',
      /tag:yaml.org,2002:binary is not supported/,
    ],
    ['a key that is not a string', '1: one\n', undefined, /key that is not a string/],
    ['an encrypted comment where a value belongs', 'note: COMMENT\n', 'note', /encrypted comment/],
    [
      'a readable integer sops cannot handle',
      'n_unencrypted: 18446744073709551615\n',
      'n_unencrypted',
      /64-bit signed range, which sops cannot handle/,
    ],
  ])('refuses %s, naming the field', async (_, body, field, message) => {
    const text = body.replace('COMMENT', seal('a comment', s.dataKey, 'note:', 'comment')) + s.metadata([]);
    const err = await refusal(decryptSops(text, FILE, [s.identity]));
    expect(err.message).toMatch(message);
    expect(err.context).toEqual(field === undefined ? { file: FILE } : { file: FILE, field });
  });

  test('a value whose stored type does not match its plaintext is malformed', async () => {
    const text = `port: ${seal('eighty', s.dataKey, 'port:', 'int')}\n${s.metadata([])}`;
    const err = await refusal(decryptSops(text, FILE, [s.identity]));
    expect(err.message).toBe('decrypts to something that is not a valid int value');
    expect(err.context).toEqual({ file: FILE, field: 'port' });
  });

  test('an empty MAC is a MAC mismatch', async () => {
    const text = `a: ${seal('x', s.dataKey, 'a:', 'str')}\n${s.metadata([]).replace(/mac: .*/, 'mac: ""')}`;
    expect((await refusal(decryptSops(text, FILE, [s.identity]))).message).toMatch(
      /^MAC mismatch: the file has no MAC/,
    );
  });
});

describe('the age key', () => {
  let s: Sealer;
  beforeAll(async () => {
    s = await sealer();
  });
  const body = (t: Sealer): string =>
    `a: ${seal('x', t.dataKey, 'a:', 'str')}\n${t.metadata([{ bytes: 'x', encrypted: true }])}`;

  test('none configured: the error says how to give mooring one', async () => {
    const err = await refusal(decryptSops(body(s), FILE, []));
    expect(err.message).toMatch(
      new RegExp(`^no age key is configured to decrypt ${FILE} \\(its recipients: age1`),
    );
    expect(err.hint).toMatch(
      /--age-key-file, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, SOPS_AGE_KEY_CMD or SOPS_AGE_SSH_PRIVATE_KEY_FILE/,
    );
  });

  test('none matches: the error names the file and its recipients, the hint mooring’s keys', async () => {
    const other = await sealer();
    const err = await refusal(decryptSops(body(s), FILE, [other.identity]));
    expect(err.message).toBe(
      `none of the 1 age key matches the recipients of ${FILE}: ${s.identity.recipient}`,
    );
    expect(err.context).toEqual({ file: FILE });
    expect(err.hint).toContain(`${other.identity.recipient} (from test key)`);
  });

  test('a recipient whose encrypted data key was replaced: the entry is damaged', async () => {
    const other = await sealer();
    const forged = body(s).replace(/-----BEGIN[\s\S]+?-----END AGE ENCRYPTED FILE-----/, () => {
      const m = /-----BEGIN[\s\S]+?-----END AGE ENCRYPTED FILE-----/.exec(other.metadata([]));
      return m?.[0] ?? '';
    });
    const err = await refusal(decryptSops(forged, FILE, [s.identity]));
    expect(err.message).toMatch(/cannot open the data key encrypted for it: the entry is damaged/);
    expect(err.context).toEqual({ file: FILE, field: 'sops.age[0].enc' });
  });
});

describe('quoted scalars as yaml.v3 folds them', () => {
  test.each([
    ["'x\u2028    y'", false, 'x\u2028y'],
    ["'a  \u2028  \u2028  b'", false, 'a\u2028\u2028b'],
    ["'a\u2028\n    b'", false, 'a\u2028\nb'],
    ["'one\n  two'", false, 'one two'],
    ["'one\n\n  two'", false, 'one\ntwo'],
    ["'it''s'", false, "it's"],
    ['"x \\L y\u2028 z"', true, 'x \u2028 y\u2028z'],
    ['"a\\\n   b"', true, 'ab'],
    ['"\\x41\\u00e9\\U0001F510\\N"', true, 'Aé🔐\u0085'],
    ['"x\u0085y"', true, 'x y'],
  ])('%j (double-quoted: %s) reads %j', (raw, double, expected) => {
    expect(readQuotedV3(raw, double)).toBe(expected);
  });

  test('a bad escape is not read', () => {
    expect(readQuotedV3('"\\q"', true)).toBeUndefined();
  });
});

describe('files that are not SOPS YAML files', () => {
  test.each([
    ['an empty file', '', /not a SOPS file: it is empty/],
    ['plain values', 'replicas: 3\n', /not a SOPS file: it has no `sops` metadata/],
    ['a list', '- a\n- b\n', /the top level of YAML document 1 is not a map/],
    [
      'two documents without sops metadata in the first',
      'a: 1\n---\nsops: {}\n',
      /it has no `sops` metadata/,
    ],
    ['broken YAML', 'a: [1\n', /^invalid YAML/],
    ['duplicate keys', 'a: 1\na: 2\n', /^invalid YAML: Map keys must be unique/],
    [
      'a SOPS dotenv file',
      'API_KEY=ENC[AES256_GCM,data:x]\nsops_version=3.13.3\n',
      /is a SOPS dotenv file; mooring reads SOPS files in YAML only/,
    ],
    [
      'a SOPS INI file',
      '[db]\npassword = ENC[AES256_GCM,data:x]\n[sops]\nversion = 3.13.3\n',
      /is a SOPS INI file; mooring reads SOPS files in YAML only/,
    ],
  ])('refuses %s, naming the file', async (_, text, message) => {
    const err = await refusal(decryptSops(text, FILE, []));
    expect(err.message).toMatch(message);
    expect(err.context.file).toBe(FILE);
  });

  test('refuses a file over the size limit before parsing it', async () => {
    const err = await refusal(decryptSops('a: b\n'.repeat(100), FILE, [], { maxBytes: 100 }));
    expect(err.message).toBe('file is 500 bytes, over the limit of 100 bytes');
  });
});
