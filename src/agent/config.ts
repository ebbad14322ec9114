// The agent's configuration: flags, each also settable by an environment variable
// (MOORING_<FLAG>). It never comes from Git: the repository cannot widen what the agent
// may do (cluster.yaml can only make it stricter).
import { MooringError } from '../errors.js';
import { redactUrl } from '../source/credentials.js';
import type { DriftMode } from '../model/releases.js';
import { layoutPath } from '../model/paths.js';
import { parseSshUrl } from '../source/ssh-transport.js';
import { DNS_LABEL, parseDuration } from '../model/schema.js';

export type ApprovalMode = 'auto' | 'manual';

export interface AgentConfig {
  repo: string;
  branch: string;
  /** `--path`: the repository folder that holds the layout (clean, relative); unset = the root. */
  path?: string;
  cluster: string;
  approval: ApprovalMode;
  drift: DriftMode;
  prune: boolean;
  /** Lets --prune uninstall every release of the cluster in one pass (SPEC §8). */
  pruneAllowEmpty: boolean;
  intervalSeconds: number;
  driftIntervalSeconds: number;
  /** Seconds between conditional requests per chart repository or registry (`--chart-interval`). */
  chartIntervalSeconds: number;
  /** Credentials and CAs for chart repositories and registries (src/charts/auth.ts). */
  chartAuthFile?: string;
  /** YAML list of drift ignore rules for every release (src/observe/drift/ignore-file.ts). */
  driftIgnoreFile?: string;
  once: boolean;
  gitUsernameFile?: string;
  gitPasswordFile?: string;
  gitCaFile?: string;
  /** Private key for an SSH --repo. */
  gitSshKeyFile?: string;
  /** known_hosts for an SSH --repo: host keys are always checked. */
  gitKnownHostsFile?: string;
  ageKeyFile?: string;
  /** Namespace of the agent's own objects (status, plans, approvals, lease). */
  namespace: string;
  /** Where snapshots are checked out; an emptyDir in the cluster. */
  workDir: string;
  /** host:port of the HTTP server (health, metrics, webhook); not started with --once. */
  listen: string;
  webhookSecretFile?: string;
  /** Releases converged at once, when their dependencies allow. */
  concurrency: number;
  leaderElection: boolean;
  /** Kube context to use instead of in-cluster config or the current context. */
  context?: string;
  /** Identity of this replica, for the Lease (pod name in a cluster). */
  identity: string;
  logLevel: string;
  /** File holding the notification webhook URL (a Secret: Slack's URL carries a token). */
  notifyUrlFile?: string;
  notifyFormat: 'slack' | 'json';
}

/** A flag: its name, the variable that can also set it, and how to read its text. */
interface Setting {
  flag: string;
  env: string;
  key: keyof AgentConfig;
  kind: 'string' | 'bool' | 'duration' | 'int' | 'enum';
  values?: readonly string[];
}

const SETTINGS: Setting[] = [
  { flag: 'repo', env: 'MOORING_REPO', key: 'repo', kind: 'string' },
  { flag: 'branch', env: 'MOORING_BRANCH', key: 'branch', kind: 'string' },
  { flag: 'path', env: 'MOORING_PATH', key: 'path', kind: 'string' },
  { flag: 'cluster', env: 'MOORING_CLUSTER', key: 'cluster', kind: 'string' },
  { flag: 'approval', env: 'MOORING_APPROVAL', key: 'approval', kind: 'enum', values: ['auto', 'manual'] },
  { flag: 'drift', env: 'MOORING_DRIFT', key: 'drift', kind: 'enum', values: ['correct', 'warn', 'off'] },
  { flag: 'prune', env: 'MOORING_PRUNE', key: 'prune', kind: 'bool' },
  { flag: 'prune-allow-empty', env: 'MOORING_PRUNE_ALLOW_EMPTY', key: 'pruneAllowEmpty', kind: 'bool' },
  { flag: 'interval', env: 'MOORING_INTERVAL', key: 'intervalSeconds', kind: 'duration' },
  { flag: 'drift-interval', env: 'MOORING_DRIFT_INTERVAL', key: 'driftIntervalSeconds', kind: 'duration' },
  { flag: 'chart-interval', env: 'MOORING_CHART_INTERVAL', key: 'chartIntervalSeconds', kind: 'duration' },
  { flag: 'chart-auth-file', env: 'MOORING_CHART_AUTH_FILE', key: 'chartAuthFile', kind: 'string' },
  { flag: 'drift-ignore-file', env: 'MOORING_DRIFT_IGNORE_FILE', key: 'driftIgnoreFile', kind: 'string' },
  { flag: 'once', env: 'MOORING_ONCE', key: 'once', kind: 'bool' },
  { flag: 'git-username-file', env: 'MOORING_GIT_USERNAME_FILE', key: 'gitUsernameFile', kind: 'string' },
  { flag: 'git-password-file', env: 'MOORING_GIT_PASSWORD_FILE', key: 'gitPasswordFile', kind: 'string' },
  { flag: 'git-ca-file', env: 'MOORING_GIT_CA_FILE', key: 'gitCaFile', kind: 'string' },
  { flag: 'git-ssh-key-file', env: 'MOORING_GIT_SSH_KEY_FILE', key: 'gitSshKeyFile', kind: 'string' },
  {
    flag: 'git-known-hosts-file',
    env: 'MOORING_GIT_KNOWN_HOSTS_FILE',
    key: 'gitKnownHostsFile',
    kind: 'string',
  },
  { flag: 'age-key-file', env: 'MOORING_AGE_KEY_FILE', key: 'ageKeyFile', kind: 'string' },
  { flag: 'namespace', env: 'MOORING_NAMESPACE', key: 'namespace', kind: 'string' },
  { flag: 'work-dir', env: 'MOORING_WORK_DIR', key: 'workDir', kind: 'string' },
  { flag: 'listen', env: 'MOORING_LISTEN', key: 'listen', kind: 'string' },
  {
    flag: 'webhook-secret-file',
    env: 'MOORING_WEBHOOK_SECRET_FILE',
    key: 'webhookSecretFile',
    kind: 'string',
  },
  { flag: 'concurrency', env: 'MOORING_CONCURRENCY', key: 'concurrency', kind: 'int' },
  { flag: 'leader-election', env: 'MOORING_LEADER_ELECTION', key: 'leaderElection', kind: 'bool' },
  { flag: 'context', env: 'MOORING_CONTEXT', key: 'context', kind: 'string' },
  { flag: 'identity', env: 'MOORING_IDENTITY', key: 'identity', kind: 'string' },
  {
    flag: 'log-level',
    env: 'MOORING_LOG_LEVEL',
    key: 'logLevel',
    kind: 'enum',
    values: ['trace', 'debug', 'info', 'warn', 'error'],
  },
  { flag: 'notify-url-file', env: 'MOORING_NOTIFY_URL_FILE', key: 'notifyUrlFile', kind: 'string' },
  {
    flag: 'notify-format',
    env: 'MOORING_NOTIFY_FORMAT',
    key: 'notifyFormat',
    kind: 'enum',
    values: ['slack', 'json'],
  },
];

export const AGENT_SETTINGS: readonly Readonly<Setting>[] = SETTINGS;

export function defaults(env: NodeJS.ProcessEnv): Omit<AgentConfig, 'repo' | 'cluster'> {
  return {
    branch: 'main',
    approval: 'auto',
    drift: 'correct',
    prune: false,
    pruneAllowEmpty: false,
    intervalSeconds: 60,
    driftIntervalSeconds: 300,
    chartIntervalSeconds: 600,
    once: false,
    namespace: env.POD_NAMESPACE || 'mooring-system',
    workDir: '/tmp/mooring',
    listen: ':8080',
    concurrency: 4,
    leaderElection: true,
    identity: env.POD_NAME || env.HOSTNAME || `mooring-${process.pid}`,
    logLevel: 'info',
    notifyFormat: 'slack',
  };
}

function convert(s: Setting, raw: unknown, origin: string): unknown {
  const bad = (expected: string) =>
    new MooringError(`${origin} must be ${expected}, found ${JSON.stringify(raw)}`, { field: `--${s.flag}` });
  switch (s.kind) {
    case 'string':
      if (typeof raw !== 'string' || raw === '') throw bad('a non-empty string');
      return raw;
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string' && /^(true|1|yes)$/i.test(raw)) return true;
      if (typeof raw === 'string' && /^(false|0|no)$/i.test(raw)) return false;
      throw bad('true or false');
    case 'duration': {
      const seconds = typeof raw === 'string' ? parseDuration(raw) : undefined;
      if (!seconds) throw bad('a duration such as 30s, 5m or 1h');
      return seconds;
    }
    case 'int': {
      const n = typeof raw === 'string' ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw bad('a whole number of at least 1');
      return n;
    }
    case 'enum':
      if (typeof raw !== 'string' || !s.values!.includes(raw)) throw bad(`one of ${s.values!.join(', ')}`);
      return raw;
  }
}

/**
 * Builds the configuration from parsed flags (commander's camelCase keys, strings as
 * given) and the environment. A flag beats its variable; both beat the default.
 */
export function loadAgentConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): AgentConfig {
  const config: Record<string, unknown> = { ...defaults(env) };
  for (const s of SETTINGS) {
    const camel = s.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const fromFlag = flags[camel];
    const fromEnv = env[s.env];
    if (fromFlag !== undefined) config[s.key] = convert(s, fromFlag, `--${s.flag}`);
    else if (fromEnv !== undefined && fromEnv !== '') config[s.key] = convert(s, fromEnv, s.env);
  }
  for (const required of ['repo', 'cluster'] as const) {
    if (config[required] === undefined) {
      throw new MooringError(`--${required} is required (or set MOORING_${required.toUpperCase()})`, {
        field: `--${required}`,
      });
    }
  }
  if (!DNS_LABEL.test(config.cluster as string)) {
    throw new MooringError(
      `--cluster must be a DNS-1123 label (a folder under clusters/), found ${JSON.stringify(config.cluster)}`,
      {
        field: '--cluster',
      },
    );
  }
  const repo = config.repo as string;
  const ssh = /^https?:\/\//.test(repo) ? undefined : parseSshUrl(repo);
  if (!/^https?:\/\//.test(repo) && !ssh) {
    throw new MooringError(
      `--repo must be an https:// Git URL, ssh://git@host/org/repo.git or git@host:org/repo.git, found ${JSON.stringify(redactUrl(repo))}`,
      {
        field: '--repo',
      },
    );
  }
  if (ssh) {
    if (ssh.user.includes(':')) {
      throw new MooringError('--repo must not carry a password; SSH authenticates with --git-ssh-key-file', {
        field: '--repo',
      });
    }
    for (const [flag, key] of [
      ['git-ssh-key-file', 'gitSshKeyFile'],
      ['git-known-hosts-file', 'gitKnownHostsFile'],
    ] as const) {
      if (config[key] === undefined) {
        throw new MooringError(
          `an SSH --repo needs --${flag} (or MOORING_${flag.toUpperCase().replace(/-/g, '_')}); host keys are always checked`,
          { field: `--${flag}` },
        );
      }
    }
  }
  if (/^https?:\/\/[^/]*@/.test(repo)) {
    throw new MooringError(
      '--repo must not carry credentials; use --git-username-file and --git-password-file',
      {
        field: '--repo',
      },
    );
  }
  const path = layoutPath(config.path as string | undefined);
  if (path === undefined) delete config.path;
  else config.path = path;
  return config as unknown as AgentConfig;
}
