// SSH remotes: the URL forms git accepts, known_hosts as OpenSSH reads it, and the agent
// configuration an SSH --repo needs. The transport itself is tested against a real sshd
// (test/integration/git-ssh.test.ts).
import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { loadAgentConfig } from '../../src/agent/config.js';
import { hostKeyAlgorithms, parseKnownHosts } from '../../src/source/known-hosts.js';
import { isSshUrl, knownHostsName, parseSshUrl } from '../../src/source/ssh-transport.js';

describe('SSH URLs', () => {
  test.each([
    [
      'ssh://git@github.com/org/repo.git',
      { user: 'git', host: 'github.com', port: 22, path: '/org/repo.git' },
    ],
    [
      'ssh://deploy@git.example.com:2222/srv/git/gitops.git',
      { user: 'deploy', host: 'git.example.com', port: 2222, path: '/srv/git/gitops.git' },
    ],
    [
      'ssh://git.example.com/~/gitops.git',
      { user: 'git', host: 'git.example.com', port: 22, path: '~/gitops.git' },
    ],
    ['ssh://git@[::1]:2200/repo.git', { user: 'git', host: '::1', port: 2200, path: '/repo.git' }],
    ['git@github.com:org/repo.git', { user: 'git', host: 'github.com', port: 22, path: 'org/repo.git' }],
    [
      'gitlab.example.com:group/sub/repo.git',
      { user: 'git', host: 'gitlab.example.com', port: 22, path: 'group/sub/repo.git' },
    ],
  ])('%s', (url, remote) => {
    expect(parseSshUrl(url)).toEqual(remote);
    expect(isSshUrl(url)).toBe(true);
  });

  test.each([
    'https://github.com/org/repo.git',
    'http://git.example.com/repo.git',
    'ssh://-oProxyCommand=evil/repo.git',
    '-oProxyCommand=evil:repo.git',
    'ssh://host',
    'ssh://host:99999/repo.git',
    '/srv/git/repo.git',
    'file:///srv/git/repo.git',
  ])('%s is no SSH remote', (url) => {
    expect(isSshUrl(url)).toBe(false);
  });

  test('a remote is named as known_hosts names it', () => {
    expect(knownHostsName({ host: 'github.com', port: 22 })).toBe('github.com');
    expect(knownHostsName({ host: '127.0.0.1', port: 2222 })).toBe('[127.0.0.1]:2222');
  });
});

describe('known_hosts', () => {
  const ed = Buffer.from('ed25519-key-blob');
  const rsa = Buffer.from('rsa-key-blob');
  const other = Buffer.from('other-key-blob');
  const b64 = (b: Buffer) => b.toString('base64');

  test('plain names, lists, ports, comments and markers', () => {
    const hosts = parseKnownHosts(
      [
        '# comment',
        '',
        `github.com,140.82.121.4 ssh-ed25519 ${b64(ed)} comment here`,
        `[git.example.com]:2222 ssh-rsa ${b64(rsa)}`,
        `@cert-authority *.example.com ssh-ed25519 ${b64(other)}`,
        `@revoked github.com ssh-rsa ${b64(other)}`,
        'garbage line',
      ].join('\n'),
    );
    expect(hosts.keysFor('github.com', 22).map((k) => [k.type, k.blob, k.revoked, k.line])).toEqual([
      ['ssh-ed25519', ed, false, 3],
      ['ssh-rsa', other, true, 6],
    ]);
    expect(hosts.keysFor('140.82.121.4', 22)).toHaveLength(1);
    expect(hosts.keysFor('GitHub.com', 22)).toHaveLength(2); // host names are case-insensitive
    expect(hosts.keysFor('github.com', 2222)).toEqual([]); // another port is another host
    expect(hosts.keysFor('git.example.com', 2222).map((k) => k.blob)).toEqual([rsa]);
    expect(hosts.keysFor('git.example.com', 22)).toEqual([]);
    expect(hosts.keysFor('ci.example.com', 22)).toEqual([]); // @cert-authority lines are not keys
  });

  test('hashed names (ssh-keygen -H) match only their host and port', () => {
    const salt = randomBytes(20);
    const hashed = (name: string) =>
      `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
    const hosts = parseKnownHosts(
      `${hashed('git.example.com')} ssh-ed25519 ${b64(ed)}\n${hashed('[10.0.0.5]:2222')} ssh-ed25519 ${b64(other)}\n`,
    );
    expect(hosts.keysFor('git.example.com', 22).map((k) => k.blob)).toEqual([ed]);
    expect(hosts.keysFor('10.0.0.5', 2222).map((k) => k.blob)).toEqual([other]);
    expect(hosts.keysFor('10.0.0.5', 22)).toEqual([]);
    expect(hosts.keysFor('git.example.org', 22)).toEqual([]);
  });

  test('wildcards and negations', () => {
    const hosts = parseKnownHosts(`*.example.com,!evil.example.com,git?.corp ssh-ed25519 ${b64(ed)}\n`);
    expect(hosts.keysFor('git.example.com', 22)).toHaveLength(1);
    expect(hosts.keysFor('evil.example.com', 22)).toEqual([]);
    expect(hosts.keysFor('git1.corp', 22)).toHaveLength(1);
    expect(hosts.keysFor('git12.corp', 22)).toEqual([]);
    expect(hosts.keysFor('example.com', 22)).toEqual([]);
  });

  test('an RSA host key may sign with SHA-2', () => {
    expect(hostKeyAlgorithms('ssh-rsa')).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    expect(hostKeyAlgorithms('ssh-ed25519')).toEqual(['ssh-ed25519']);
  });
});

describe('agent configuration for an SSH --repo', () => {
  const base = { cluster: 'prod-1' };

  test('both files are required, by flag or variable, each error naming its flag', () => {
    expect(() => loadAgentConfig({ ...base, repo: 'git@github.com:org/gitops.git' }, {})).toThrow(
      /an SSH --repo needs --git-ssh-key-file \(or MOORING_GIT_SSH_KEY_FILE\); host keys are always checked/,
    );
    expect(() =>
      loadAgentConfig({ ...base, repo: 'ssh://git@github.com/org/gitops.git', gitSshKeyFile: '/k' }, {}),
    ).toThrow(/needs --git-known-hosts-file/);
    const config = loadAgentConfig(
      { ...base, repo: 'ssh://git@github.com/org/gitops.git' },
      {
        MOORING_GIT_SSH_KEY_FILE: '/etc/mooring/ssh/identity',
        MOORING_GIT_KNOWN_HOSTS_FILE: '/etc/mooring/ssh/known_hosts',
      },
    );
    expect(config).toMatchObject({
      repo: 'ssh://git@github.com/org/gitops.git',
      gitSshKeyFile: '/etc/mooring/ssh/identity',
      gitKnownHostsFile: '/etc/mooring/ssh/known_hosts',
    });
  });

  test('other URLs are refused, naming the forms that work', () => {
    expect(() => loadAgentConfig({ ...base, repo: 'file:///srv/gitops.git' }, {})).toThrow(
      /--repo must be an https:\/\/ Git URL, ssh:\/\/git@host\/org\/repo.git or git@host:org\/repo.git/,
    );
    expect(() =>
      loadAgentConfig(
        { ...base, repo: 'ssh://git:hunter2@host/repo.git', gitSshKeyFile: '/k', gitKnownHostsFile: '/h' },
        {},
      ),
    ).toThrow(/must not carry a password/);
  });

  test('--path is cleaned, and may not leave the repository', () => {
    const https = { ...base, repo: 'https://git.example.com/gitops.git' };
    expect(loadAgentConfig({ ...https, path: './deploy//gitops/' }, {}).path).toBe('deploy/gitops');
    expect(loadAgentConfig(https, { MOORING_PATH: 'clusters-repo' }).path).toBe('clusters-repo');
    expect(loadAgentConfig({ ...https, path: '.' }, {}).path).toBeUndefined();
    expect(() => loadAgentConfig({ ...https, path: '/etc' }, {})).toThrow(/--path must be a folder relative/);
    expect(() => loadAgentConfig({ ...https, path: 'a/../../b' }, {})).toThrow(/leaves the repository/);
  });
});
