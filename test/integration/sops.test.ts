// mooring opens SOPS files exactly as the real sops does: it decrypts what sops encrypted,
// with the same value types, and it refuses every file sops refuses because its MAC (or a
// value's authentication) no longer matches. Every fixture is encrypted by the real
// `sops` binary (.tools/bin/sops) inside the test; nothing is pre-baked.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decryptSops as sopsAgeDecrypt } from 'sops-age';
import { beforeAll, describe, expect, test } from 'vitest';
import { MooringError } from '../../src/errors.js';
import { AgeIdentity, loadAgeIdentities } from '../../src/resolve/age-key.js';
import { decryptSops } from '../../src/resolve/sops.js';
import { ageKeygen, sopsDecrypt, sopsEncrypt, type AgeKeyPair } from '../rig/sops.js';

const FILE = 'environments/prod/secrets.sops.yaml';

let alice: AgeKeyPair;
let bob: AgeKeyPair;
let aliceId: AgeIdentity;
let bobId: AgeIdentity;

beforeAll(async () => {
  [alice, bob] = await Promise.all([ageKeygen(), ageKeygen()]);
  aliceId = await AgeIdentity.fromSecretKey(alice.identity, 'alice.txt');
  bobId = await AgeIdentity.fromSecretKey(bob.identity, 'bob.txt');
});

/** The error mooring raises for a file, or fails the test if it opens. */
async function refusal(text: string, identities: AgeIdentity[] = [aliceId]): Promise<MooringError> {
  const err = await decryptSops(text, FILE, identities).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof MooringError)) throw new Error(`expected a MooringError, got ${String(err)}`);
  return err;
}

/** The encrypted text of `key: ENC[...]` at the given indentation. */
function encryptedValueOf(text: string, key: string): string {
  const m = new RegExp(`^\\s*${key}: (ENC\\[[^\\]]+\\])$`, 'm').exec(text);
  if (!m?.[1]) throw new Error(`no encrypted value for ${key}`);
  return m[1];
}

describe('decrypting files the real sops encrypted', () => {
  test('sops-age decrypts a file that the real sops encrypted', async () => {
    const encrypted = await sopsEncrypt('db:\n  user: app\n  password: s3cr3t\nreplicas: 3\n', {
      recipients: [alice.publicKey],
    });
    const viaSopsAge: unknown = await sopsAgeDecrypt(encrypted, {
      secretKey: alice.identity,
      fileType: 'yaml',
    });
    expect(viaSopsAge).toEqual({ db: { user: 'app', password: 's3cr3t' }, replicas: 3 });
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual(viaSopsAge);
  });

  test('keeps the structure and every value type sops records', async () => {
    const plain = [
      '# sops encrypts comments too; they are not values',
      'image:',
      '  repository: ghcr.io/acme/web',
      '  tag: "1.2.3"',
      'replicas: 3',
      'ratio: 0.1',
      'huge: 1e21',
      'whole: 3.0',
      'enabled: true',
      'disabled: false',
      'nothing: null',
      'numberLike: "123"',
      'exponentLike: "1e3"',
      'boolLike: "true"',
      'hexLike: "0x1F"',
      'nullLike: "null"',
      'empty: ""',
      'unicode: "pässwörd 密码 🔐"',
      'literal: |',
      '  line one',
      '  line two',
      'folded: >',
      '  folded',
      '  text',
      'hosts:',
      '  - a.example.com',
      '  - b.example.com',
      'users:',
      '  - name: alice',
      '    admin: true',
      '  - name: bob',
      '    uid: 1001',
      'matrix:',
      '  - [1, 2]',
      '  - [x]',
      'emptyMap: {}',
      'emptyList: []',
      'nested:',
      '  # a comment inside a map',
      '  deeper:',
      '    deepest: value # and one after a value',
      '',
    ].join('\n');
    const encrypted = await sopsEncrypt(plain, { recipients: [alice.publicKey] });
    expect(encrypted).not.toContain('alice');
    expect(encrypted).toContain('type:comment]');

    const doc = await decryptSops(encrypted, FILE, [aliceId]);

    expect(doc).toEqual({
      image: { repository: 'ghcr.io/acme/web', tag: '1.2.3' },
      replicas: 3,
      ratio: 0.1,
      huge: 1e21,
      whole: 3,
      enabled: true,
      disabled: false,
      nothing: null,
      numberLike: '123',
      exponentLike: '1e3',
      boolLike: 'true',
      hexLike: '0x1F',
      nullLike: 'null',
      empty: '',
      unicode: 'pässwörd 密码 🔐',
      literal: 'line one\nline two\n',
      folded: 'folded text\n',
      hosts: ['a.example.com', 'b.example.com'],
      users: [
        { name: 'alice', admin: true },
        { name: 'bob', uid: 1001 },
      ],
      matrix: [[1, 2], ['x']],
      emptyMap: {},
      emptyList: [],
      nested: { deeper: { deepest: 'value' } },
    });
    expect(Object.keys(doc)).not.toContain('sops');
    const bySops = await sopsDecrypt(encrypted, alice.identity);
    expect(bySops).toEqual({ ok: true, document: doc });
  });

  test('types values the way sops (Go) does, not the way YAML 1.2 would', async () => {
    const encrypted = await sopsEncrypt(
      [
        'octal: 010',
        'hex: 0x1F',
        'underscored: 1_000',
        'leadingZero: 08',
        'date: 2024-01-02',
        'word: yes',
        '',
      ].join('\n'),
      { recipients: [alice.publicKey] },
    );
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual({
      octal: 8,
      hex: 31,
      underscored: 1000,
      leadingZero: 8,
      date: '2024-01-02T00:00:00Z',
      word: 'yes',
    });
  });

  test('each of two age recipients opens the file alone', async () => {
    const encrypted = await sopsEncrypt('token: abc\n', { recipients: [alice.publicKey, bob.publicKey] });
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual({ token: 'abc' });
    expect(await decryptSops(encrypted, FILE, [bobId])).toEqual({ token: 'abc' });
  });

  test('keys found the way sops finds them: a key file from age-keygen and SOPS_AGE_KEY', async () => {
    const encrypted = await sopsEncrypt('token: abc\n', { recipients: [bob.publicKey] });
    const dir = await mkdtemp(join(tmpdir(), 'mooring-age-keys-'));
    try {
      await writeFile(join(dir, 'keys.txt'), alice.keyFile);
      const identities = await loadAgeIdentities({
        env: {
          SOPS_AGE_KEY_FILE: join(dir, 'keys.txt'),
          SOPS_AGE_KEY: `# bob\n${bob.identity}\n`,
          HOME: dir,
        },
      });
      expect(identities.map((i) => i.recipient).sort()).toEqual([alice.publicKey, bob.publicKey].sort());
      expect(await decryptSops(encrypted, FILE, identities)).toEqual({ token: 'abc' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a key that is not a recipient is skipped when another one is', async () => {
    const encrypted = await sopsEncrypt('token: abc\n', { recipients: [bob.publicKey] });
    expect(await decryptSops(encrypted, FILE, [aliceId, bobId])).toEqual({ token: 'abc' });
  });

  test('map keys made of digits are part of a value’s authenticated path (sops-age gets this wrong)', async () => {
    const encrypted = await sopsEncrypt('ports:\n  "443": https\n  "80": http\n', {
      recipients: [alice.publicKey],
    });
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual({
      ports: { '443': 'https', '80': 'http' },
    });
    await expect(
      sopsAgeDecrypt(encrypted, { secretKey: alice.identity, fileType: 'yaml' }),
    ).rejects.toThrow();
  });
});

describe('encryption rules written in the file', () => {
  test('unencrypted_suffix (the default) leaves marked keys readable and still verifies them', async () => {
    const encrypted = await sopsEncrypt('password: s3cr3t\nhost_unencrypted: db.internal\n', {
      recipients: [alice.publicKey],
    });
    expect(encrypted).toContain('host_unencrypted: db.internal');
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual({
      password: 's3cr3t',
      host_unencrypted: 'db.internal',
    });
  });

  test('a custom unencrypted_suffix covers everything below the marked key', async () => {
    const encrypted = await sopsEncrypt('config_plain:\n  port: 5432\n  tls: true\npassword: s3cr3t\n', {
      recipients: [alice.publicKey],
      unencryptedSuffix: '_plain',
    });
    expect(encrypted).toContain('port: 5432');
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual({
      config_plain: { port: 5432, tls: true },
      password: 's3cr3t',
    });
  });

  test('encrypted_suffix encrypts only the marked keys', async () => {
    const encrypted = await sopsEncrypt('password_secret: s3cr3t\nport: 5432\n', {
      recipients: [alice.publicKey],
      encryptedSuffix: '_secret',
    });
    expect(encrypted).toContain('port: 5432');
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual({ password_secret: 's3cr3t', port: 5432 });
  });

  test('encrypted_regex encrypts only the matching keys, like a Kubernetes Secret', async () => {
    const plain = 'kind: Secret\nmetadata:\n  name: db\nstringData:\n  password: s3cr3t\n  user: app\n';
    const encrypted = await sopsEncrypt(plain, {
      recipients: [alice.publicKey],
      encryptedRegex: '^(data|stringData)$',
    });
    expect(encrypted).toContain('kind: Secret');
    expect(encrypted).not.toContain('s3cr3t');
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual({
      kind: 'Secret',
      metadata: { name: 'db' },
      stringData: { password: 's3cr3t', user: 'app' },
    });
  });

  test('unencrypted_regex leaves the matching keys readable', async () => {
    const encrypted = await sopsEncrypt('description: public\npassword: s3cr3t\n', {
      recipients: [alice.publicKey],
      unencryptedRegex: '^desc',
    });
    expect(encrypted).toContain('description: public');
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual({
      description: 'public',
      password: 's3cr3t',
    });
  });

  test('mac_only_encrypted verifies the encrypted values, and (as in sops) not the readable ones', async () => {
    const encrypted = await sopsEncrypt('password: s3cr3t\nnote_unencrypted: hello\n', {
      recipients: [alice.publicKey],
      macOnlyEncrypted: true,
    });
    expect(encrypted).toContain('mac_only_encrypted: true');
    expect(await decryptSops(encrypted, FILE, [aliceId])).toEqual({
      password: 's3cr3t',
      note_unencrypted: 'hello',
    });

    const readableEdited = encrypted.replace('note_unencrypted: hello', 'note_unencrypted: bye');
    expect(await decryptSops(readableEdited, FILE, [aliceId])).toEqual({
      password: 's3cr3t',
      note_unencrypted: 'bye',
    });
    expect((await sopsDecrypt(readableEdited, alice.identity)).ok).toBe(true);

    const encryptedRemoved = encrypted.replace(/^password: .*\n/m, '');
    expect((await refusal(encryptedRemoved)).message).toMatch(/^MAC mismatch/);
    expect((await sopsDecrypt(encryptedRemoved, alice.identity)).ok).toBe(false);
  });
});

describe('refusing files changed after encryption', () => {
  const SECRETS = ['hunter2-primary-password', 'hunter2-replica-password', 'tok-9f8e7d6c5b4a'];
  const PLAIN = [
    `primary: ${SECRETS[0]}`,
    `replica: ${SECRETS[1]}`,
    'hosts:',
    '  - a.example.com',
    '  - b.example.com',
    `api: {token: ${SECRETS[2]}}`,
    'region_unencrypted: eu-west-1',
    '',
  ].join('\n');
  let encrypted: string;
  const errors: MooringError[] = [];

  beforeAll(async () => {
    encrypted = await sopsEncrypt(PLAIN, { recipients: [alice.publicKey] });
  });

  /** mooring refuses the file with a MAC mismatch, and so does the real sops. */
  async function expectMacMismatch(tampered: string): Promise<void> {
    expect(tampered).not.toEqual(encrypted);
    const err = await refusal(tampered);
    errors.push(err);
    expect(err.message).toMatch(/^MAC mismatch/);
    expect(err.context.file).toBe(FILE);
    expect((await sopsDecrypt(tampered, alice.identity)).ok).toBe(false);
  }

  test('the untouched file opens', async () => {
    expect(await decryptSops(encrypted, FILE, [aliceId])).toMatchObject({ primary: SECRETS[0] });
  });

  test('an edited readable value', async () => {
    await expectMacMismatch(
      encrypted.replace('region_unencrypted: eu-west-1', 'region_unencrypted: us-east-1'),
    );
  });

  test('a removed key', async () => {
    await expectMacMismatch(encrypted.replace(/^replica: .*\n/m, ''));
  });

  test('a duplicated list item', async () => {
    await expectMacMismatch(encrypted.replace(/^( {4}- ENC\[[^\n]+\n)/m, '$1$1'));
  });

  test('list items in another order', async () => {
    const [first, second] = encrypted.match(/^ {4}- ENC\[[^\n]+$/gm) ?? [];
    if (!first || !second) throw new Error('expected two list items');
    await expectMacMismatch(encrypted.replace(first, '@@').replace(second, first).replace('@@', second));
  });

  test('a changed lastmodified', async () => {
    await expectMacMismatch(
      encrypted.replace(/lastmodified: "[^"]+"/, 'lastmodified: "2020-01-01T00:00:00Z"'),
    );
  });

  test('an edited mac', async () => {
    const mac = /mac: ENC\[AES256_GCM,data:(.)/.exec(encrypted);
    if (!mac?.[1]) throw new Error('no mac');
    const flipped = mac[1] === 'A' ? 'B' : 'A';
    await expectMacMismatch(encrypted.replace(mac[0], `mac: ENC[AES256_GCM,data:${flipped}`));
  });

  test('a mac taken from another file encrypted with another data key', async () => {
    const other = await sopsEncrypt(PLAIN, { recipients: [alice.publicKey] });
    const macOf = (t: string): string => /^ {4}mac: (.+)$/m.exec(t)?.[1] ?? '';
    await expectMacMismatch(encrypted.replace(macOf(encrypted), macOf(other)));
  });

  test('two encrypted values swapped between keys: the value no longer authenticates at its place', async () => {
    const primary = encryptedValueOf(encrypted, 'primary');
    const replica = encryptedValueOf(encrypted, 'replica');
    const swapped = encrypted.replace(primary, '@@').replace(replica, primary).replace('@@', replica);
    const err = await refusal(swapped);
    errors.push(err);
    expect(err.message).toMatch(/cannot be decrypted: the encrypted value was modified, or moved here/);
    expect(err.context).toMatchObject({ file: FILE, field: 'primary' });
    expect((await sopsDecrypt(swapped, alice.identity)).ok).toBe(false);
  });

  test('an encrypted value replaced by plain text', async () => {
    const err = await refusal(encrypted.replace(encryptedValueOf(encrypted, 'token'), 'guessed'));
    errors.push(err);
    expect(err.message).toMatch(/is not encrypted, but the file says it must be/);
    expect(err.context).toMatchObject({ file: FILE, field: 'api.token' });
  });

  test('a malformed encrypted value names its field', async () => {
    const token = encryptedValueOf(encrypted, 'token');
    const err = await refusal(encrypted.replace(token, token.replace(/tag:[^,]+,/, 'tag:AAAA,')));
    errors.push(err);
    expect(err.message).toMatch(/malformed encrypted value/);
    expect(err.context).toMatchObject({ file: FILE, field: 'api.token' });
  });

  test('a wrong age key: the error names the file and its recipients', async () => {
    const err = await refusal(encrypted, [bobId]);
    errors.push(err);
    expect(err.message).toBe(`none of the 1 age key matches the recipients of ${FILE}: ${alice.publicKey}`);
    expect(err.context.file).toBe(FILE);
    expect(err.hint).toContain(bob.publicKey);
  });

  test('no error message or hint ever contains a decrypted value', () => {
    expect(errors.length).toBeGreaterThanOrEqual(10);
    for (const err of errors) {
      const everything = JSON.stringify({ message: err.message, hint: err.hint, context: err.context });
      for (const secret of SECRETS) expect(everything).not.toContain(secret);
      expect(everything).not.toContain(alice.identity);
    }
  });
});

describe('readable values: mooring accepts exactly the rewrites sops accepts', () => {
  // sops hashes a readable value as Go prints it, so a rewrite that Go reads as the same
  // value keeps the MAC valid, and any other rewrite breaks it. mooring must agree.
  const cases: [string, string, string, boolean][] = [
    ['count_unencrypted', '15', '0o17', true],
    ['count_unencrypted', '15', '0xF', true],
    ['count_unencrypted', '15', '"15"', true],
    ['count_unencrypted', '15', '15.0', true],
    ['count_unencrypted', '15', '16', false],
    ['flag_unencrypted', 'true', 'True', true],
    ['flag_unencrypted', 'true', 'yes', false],
    ['ratio_unencrypted', '0.1', '.1', true],
    ['ratio_unencrypted', '0.1', '1e-1', true],
    ['ratio_unencrypted', '0.1', '0.10000001', false],
    ['when_unencrypted', '2024-01-02T00:00:00Z', '2024-1-2', true],
    ['when_unencrypted', '2024-01-02T00:00:00Z', '"2024-01-02"', false],
    ['label_unencrypted', '"y"', 'y', true],
    ['label_unencrypted', '"y"', 'Y', false],
  ];
  let encrypted: string;

  beforeAll(async () => {
    const plain =
      'password: s3cr3t\ncount_unencrypted: 15\nflag_unencrypted: true\nratio_unencrypted: 0.1\nwhen_unencrypted: 2024-01-02T00:00:00Z\nlabel_unencrypted: "y"\n';
    encrypted = await sopsEncrypt(plain, { recipients: [alice.publicKey] });
  });

  test.each(cases)('%s: %s rewritten as %s (sops accepts: %s)', async (key, from, to, accepted) => {
    const line = `${key}: ${from}`;
    expect(encrypted).toContain(line);
    const rewritten = encrypted.replace(line, `${key}: ${to}`);
    expect((await sopsDecrypt(rewritten, alice.identity)).ok).toBe(accepted);
    const ours = await decryptSops(rewritten, FILE, [aliceId]).then(
      () => true,
      (err: unknown) => {
        expect((err as Error).message).toMatch(/^MAC mismatch/);
        return false;
      },
    );
    expect(ours).toBe(accepted);
  });
});
