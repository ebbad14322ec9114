// The agent's configuration: every `mooring run` flag can also be set by its MOORING_*
// variable, a flag beats its variable, and bad values name the flag to fix.
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../src/agent/config.js';
import { MooringError } from '../../src/errors.js';

const REQUIRED = { MOORING_REPO: 'https://git.example.com/gitops.git', MOORING_CLUSTER: 'prod-eu-west' };

function errorOf(fn: () => unknown): MooringError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MooringError) return err;
    throw err;
  }
  throw new Error('expected a MooringError');
}

describe('agent configuration', () => {
  it('is read from MOORING_* variables alone', () => {
    const config = loadAgentConfig(
      {},
      {
        ...REQUIRED,
        MOORING_BRANCH: 'release',
        MOORING_APPROVAL: 'manual',
        MOORING_DRIFT: 'warn',
        MOORING_PRUNE: 'true',
        MOORING_INTERVAL: '30s',
        MOORING_ONCE: '1',
        MOORING_GIT_USERNAME_FILE: '/etc/git/username',
        MOORING_GIT_PASSWORD_FILE: '/etc/git/password',
        MOORING_GIT_CA_FILE: '/etc/git/ca.pem',
        MOORING_LEADER_ELECTION: 'false',
      },
    );
    expect(config).toMatchObject({
      repo: REQUIRED.MOORING_REPO,
      cluster: 'prod-eu-west',
      branch: 'release',
      approval: 'manual',
      drift: 'warn',
      prune: true,
      intervalSeconds: 30,
      once: true,
      gitUsernameFile: '/etc/git/username',
      gitPasswordFile: '/etc/git/password',
      gitCaFile: '/etc/git/ca.pem',
      leaderElection: false,
    });
  });

  it('has the documented defaults', () => {
    expect(loadAgentConfig({}, REQUIRED)).toMatchObject({
      branch: 'main',
      approval: 'auto',
      drift: 'correct',
      prune: false,
      intervalSeconds: 60,
      once: false,
      leaderElection: true,
    });
  });

  it('lets a flag win over its variable', () => {
    const config = loadAgentConfig(
      { approval: 'auto', cluster: 'dev-us-east', interval: '5m' },
      { ...REQUIRED, MOORING_APPROVAL: 'manual', MOORING_INTERVAL: '30s' },
    );
    expect(config).toMatchObject({ approval: 'auto', cluster: 'dev-us-east', intervalSeconds: 300 });
  });

  it('names the flag of a missing or bad setting', () => {
    expect(errorOf(() => loadAgentConfig({}, { MOORING_CLUSTER: 'c' })).context.field).toBe('--repo');
    const bad = errorOf(() => loadAgentConfig({}, { ...REQUIRED, MOORING_DRIFT: 'sometimes' }));
    expect(bad.context.field).toBe('--drift');
    expect(bad.message).toMatch(/MOORING_DRIFT must be one of correct, warn, off/);
  });

  it('refuses credentials in the repository URL, without repeating them', () => {
    const err = errorOf(() =>
      loadAgentConfig({ repo: 'https://bob:hunter2@git.example.com/r.git' }, REQUIRED),
    );
    expect(err.context.field).toBe('--repo');
    expect(err.message).not.toContain('hunter2');
  });
});
