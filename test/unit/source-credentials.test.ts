// Git credentials: read from files on every use, defaulted sensibly for tokens, and kept out
// of everything printed.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  DEFAULT_TOKEN_USERNAME,
  readCredentials,
  redactUrl,
  scrubSecrets,
  splitUrlCredentials,
} from '../../src/source/credentials.js';
import type { MooringError } from '../../src/errors.js';

async function files(entries: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'mooring-creds-'));
  const paths: Record<string, string> = {};
  for (const [name, content] of Object.entries(entries)) {
    paths[name] = join(dir, name);
    await writeFile(paths[name], content);
  }
  return { dir, paths };
}

describe('readCredentials', () => {
  test('reads user name and password, dropping the newline a Secret usually ends with', async () => {
    const { paths } = await files({ username: 'deploy-bot\n', password: 'glpat-token\n' });
    expect(await readCredentials({ usernameFile: paths.username, passwordFile: paths.password })).toEqual({
      username: 'deploy-bot',
      password: 'glpat-token',
    });
  });

  test('a token without a user name goes with x-access-token', async () => {
    const { paths } = await files({ token: 'ghs_abc' });
    expect(await readCredentials({ passwordFile: paths.token })).toEqual({
      username: DEFAULT_TOKEN_USERNAME,
      password: 'ghs_abc',
    });
    expect(DEFAULT_TOKEN_USERNAME).toBe('x-access-token');
  });

  test('no files means anonymous access', async () => {
    expect(await readCredentials({})).toBeUndefined();
  });

  test('a missing or empty file is an error naming the flag and the file, not its content', async () => {
    const { dir, paths } = await files({ empty: ' \n' });
    const missing = join(dir, 'nope');
    await expect(readCredentials({ passwordFile: missing })).rejects.toThrow(
      'cannot read --git-password-file (ENOENT)',
    );
    await expect(readCredentials({ passwordFile: paths.empty })).rejects.toThrow(
      '--git-password-file is empty',
    );
    const err = await readCredentials({ passwordFile: missing }).catch((e: MooringError) => e);
    expect((err as MooringError).context.file).toBe(missing);
  });

  test('a user name without a password is a configuration error', async () => {
    const { paths } = await files({ username: 'bot' });
    await expect(readCredentials({ usernameFile: paths.username })).rejects.toThrow(
      '--git-username-file is set but --git-password-file is not',
    );
  });
});

describe('URLs', () => {
  test('credentials written into the URL are split off it', () => {
    expect(splitUrlCredentials('https://bot:s%40cret@git.example.com/org/gitops.git')).toEqual({
      url: 'https://git.example.com/org/gitops.git',
      credentials: { username: 'bot', password: 's@cret' },
    });
    expect(splitUrlCredentials('https://ghp_token@github.com/org/gitops.git/')).toEqual({
      url: 'https://github.com/org/gitops.git',
      credentials: { username: DEFAULT_TOKEN_USERNAME, password: 'ghp_token' },
    });
    expect(splitUrlCredentials('https://github.com/org/gitops.git')).toEqual({
      url: 'https://github.com/org/gitops.git',
    });
  });

  test('only http(s) repositories are accepted, and a bad URL is not echoed with its secrets', () => {
    expect(() => splitUrlCredentials('git@github.com:org/gitops.git')).toThrow('--repo is not a URL');
    expect(() => splitUrlCredentials('ssh://git@github.com/org/gitops.git')).toThrow(
      '--repo must be an https:// (or http://) URL, got ssh://',
    );
  });

  test('redactUrl drops user-info and query strings', () => {
    expect(redactUrl('https://bot:tok@git.example.com/gitops.git?private_token=tok')).toBe(
      'https://git.example.com/gitops.git?redacted',
    );
    expect(redactUrl('not a url://bot:tok@host/x?y=tok')).not.toContain('tok');
  });
});

describe('scrubSecrets', () => {
  test('removes the password, its URL-encoded form and the basic auth header value', () => {
    const credentials = { username: 'bot', password: 'p@ss/word' };
    const header = Buffer.from('bot:p@ss/word').toString('base64');
    const text = `failed: p@ss/word p%40ss%2Fword Basic ${header}`;
    expect(scrubSecrets(text, credentials)).toBe('failed: *** *** Basic ***');
  });
});
