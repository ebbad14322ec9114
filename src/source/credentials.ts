// Git credentials, read from files (Kubernetes Secret mounts) on every use, so a rotated token
// is picked up on the next poll without a restart. Also the one place that knows how to keep
// credentials out of anything printed: URLs lose their user-info, messages lose the secrets.
import { readFile } from 'node:fs/promises';
import { MooringError } from '../errors.js';

export interface GitCredentials {
  username: string;
  password: string;
}

export interface CredentialFiles {
  usernameFile?: string;
  passwordFile?: string;
}

/**
 * User name sent with a token when no `--git-username-file` is given. GitHub requires exactly
 * this name for App installation tokens and accepts any name with personal tokens; GitLab,
 * Gitea and Azure DevOps accept any non-empty name with a token. Bitbucket (`x-token-auth`) and
 * GitLab OAuth tokens (`oauth2`) need a username file.
 */
export const DEFAULT_TOKEN_USERNAME = 'x-access-token';

/**
 * Reads the credential files. No files: anonymous access (undefined). A password (token) file
 * alone: the token with DEFAULT_TOKEN_USERNAME.
 */
export async function readCredentials(files: CredentialFiles): Promise<GitCredentials | undefined> {
  if (files.usernameFile && !files.passwordFile) {
    throw new MooringError(
      '--git-username-file is set but --git-password-file is not',
      {
        file: files.usernameFile,
      },
      { hint: 'a user name needs a password or token; set --git-password-file' },
    );
  }
  if (!files.passwordFile) return undefined;
  const password = await readSecretFile(files.passwordFile, '--git-password-file');
  const username = files.usernameFile
    ? await readSecretFile(files.usernameFile, '--git-username-file')
    : DEFAULT_TOKEN_USERNAME;
  return { username, password };
}

async function readSecretFile(path: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new MooringError(`cannot read ${flag} (${code})`, { file: path });
  }
  // Secrets created with `echo` or a YAML block scalar end with a newline that is not part of them.
  const value = text.trim();
  if (value === '') throw new MooringError(`${flag} is empty`, { file: path });
  return value;
}

export function basicAuthHeader(credentials: GitCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/**
 * Splits credentials written into the URL (`https://user:token@host/repo`) off it. The URL
 * without them is what requests and messages use; the credential files take precedence.
 */
export function splitUrlCredentials(url: string): { url: string; credentials?: GitCredentials } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new MooringError(`--repo is not a URL: ${redactUrl(url)}`, { field: 'repo' });
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new MooringError(`--repo must be an https:// (or http://) URL, got ${parsed.protocol}//`, {
      field: 'repo',
    });
  }
  const username = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  parsed.username = '';
  parsed.password = '';
  const clean = parsed.toString().replace(/\/+$/, '');
  if (!username && !password) return { url: clean };
  return {
    url: clean,
    credentials: password
      ? { username: username || DEFAULT_TOKEN_USERNAME, password }
      : { username: DEFAULT_TOKEN_USERNAME, password: username },
  };
}

/** The URL as it may be printed: no user-info, no query (some servers take tokens there). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    parsed.search = parsed.search ? '?redacted' : '';
    return parsed.toString().replace(/\/+$/, '');
  } catch {
    // Not a URL at all: print only what cannot be a secret.
    return url.replace(/\/\/[^@/]*@/, '//').replace(/\?.*$/, '');
  }
}

/** Removes every secret, and its base64 form as sent in a header, from a text. */
export function scrubSecrets(text: string, credentials: GitCredentials | undefined): string {
  if (!credentials) return text;
  const secrets = [
    credentials.password,
    Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64'),
    encodeURIComponent(credentials.password),
  ].filter((s) => s.length >= 4);
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('***');
  return out;
}
