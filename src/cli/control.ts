// `mooring suspend`, `mooring resume` and `mooring reconcile`: an operator's controls over a
// running agent, kept in the cluster where RBAC decides who may use them, never in Git.
// The whole agent is controlled through its MooringAgent object, one release through its
// MooringRelease: `spec.suspend` for a suspension, the reconcile annotation for "a pass now,
// forgetting retry backoff". The agent watches both and acts at once; reconcile waits until
// it has (Flux's `flux reconcile` does the same).
import type { Command } from 'commander';
import { MooringError } from '../errors.js';
import type { Kube } from '../kube/connect.js';
import { customResources } from '../kube/custom.js';
import { apiErrorMessage, isNotFound } from '../kube/errors.js';
import { whoAmI } from '../kube/objects.js';
import type { RestClient } from '../kube/rest.js';
import { parseDuration } from '../model/schema.js';
import type { AgentObject } from '../observe/agent-object.js';
import { MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from '../observe/crds.js';
import { RECONCILE_ANNOTATION } from '../observe/status.js';
import { openKubeClients, outputOption } from './common.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { machine, type Io, type OutputFormat } from './output.js';

/** Who suspended and when: shown by `kubectl describe`, removed by resume. */
export const SUSPENDED_BY_ANNOTATION = 'mooring.io/suspended-by';
export const SUSPENDED_AT_ANNOTATION = 'mooring.io/suspended-at';

export type ControlAction = 'suspend' | 'resume' | 'reconcile';

export interface ControlOptions {
  context: string;
  namespace: string;
  /** The agent's cluster name, when several agents share the namespace. */
  cluster?: string;
  release?: string;
  /** reconcile: wait until the agent handled the request (default true). */
  wait: boolean;
  timeout: string;
  output: OutputFormat;
  kubeconfig?: string;
}

export interface ControlDeps {
  clients?: Pick<Kube, 'rest'>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** What the command did, as printed with -o json|yaml. */
export interface ControlResult {
  action: ControlAction;
  context: string;
  namespace: string;
  cluster: string;
  release?: string;
  suspended: boolean;
  /** reconcile (and resume): the request's value (a timestamp). */
  requestedAt?: string;
  /** reconcile: whether the agent handled it before the timeout. */
  handled?: boolean;
  /** reconcile: the release's state, or the outcome of the agent's pass, afterwards. */
  result?: string;
  error?: string;
}

interface ControlledObject extends AgentObject {
  status?: AgentObject['status'] & { state?: string; lastError?: string; cluster?: string };
}

export async function control(
  action: ControlAction,
  opts: ControlOptions,
  io: Io,
  deps: ControlDeps = {},
): Promise<ExitCode> {
  const fail = (code: ExitCode, message: string, hint?: string): ExitCode => {
    if (opts.output !== 'text')
      io.out(machine({ action, ok: false, error: { message, ...(hint ? { hint } : {}) } }, opts.output));
    io.err(`error: ${message}${hint ? ` (${hint})` : ''}`);
    return code;
  };
  const timeoutSeconds = parseDuration(opts.timeout);
  if (!timeoutSeconds) {
    return fail(
      EXIT.usage,
      `--timeout must be a duration such as 30s or 2m, found ${JSON.stringify(opts.timeout)}`,
    );
  }
  const clients = deps.clients ?? openKubeClients(opts);
  if (clients instanceof MooringError) return fail(EXIT.cluster, clients.message, clients.hint);
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const where = `namespace ${opts.namespace} of context ${opts.context}`;

  let agent: ControlledObject;
  try {
    agent = await findAgent(clients.rest, opts);
  } catch (err) {
    if (err instanceof MooringError)
      return fail(err.context.field ? EXIT.usage : EXIT.failed, err.message, err.hint);
    return fail(EXIT.cluster, `cannot read the mooring agents in ${where}: ${apiErrorMessage(err)}`);
  }
  const cluster = agent.metadata.name;
  const kind = opts.release === undefined ? MOORING_KINDS.MooringAgent : MOORING_KINDS.MooringRelease;
  const name = opts.release ?? cluster;
  const what =
    opts.release === undefined
      ? `the agent of cluster ${cluster}`
      : `release ${opts.release} of cluster ${cluster}`;
  const objects = customResources(clients.rest, {
    group: MOORING_GROUP,
    version: MOORING_VERSION,
    plural: kind.plural,
    namespace: opts.namespace,
  });

  let target: ControlledObject;
  try {
    target = opts.release === undefined ? agent : await objects.get<ControlledObject>(name);
  } catch (err) {
    if (isNotFound(err)) {
      return fail(
        EXIT.failed,
        `no MooringRelease ${opts.release} in ${where}`,
        'the agent reports a release once it has seen it in Git; `mooring status` lists them',
      );
    }
    return fail(
      EXIT.cluster,
      `cannot read MooringRelease ${opts.release} in ${where}: ${apiErrorMessage(err)}`,
    );
  }
  const suspended =
    target.spec?.suspend === true || (opts.release !== undefined && agent.spec?.suspend === true);
  if (action === 'reconcile' && suspended) {
    return fail(
      EXIT.failed,
      `${what} is suspended${target.spec?.suspend === true ? '' : ' (the whole agent is)'}: nothing would run`,
      `mooring resume --context ${opts.context}${target.spec?.suspend === true && opts.release ? ` --release ${opts.release}` : ''}`,
    );
  }

  const at = new Date(now()).toISOString();
  let patch: object;
  if (action === 'suspend') {
    let by = 'unknown';
    try {
      by = (await whoAmI(clients)).username;
    } catch {
      // Who suspended is a courtesy; the suspension does not depend on it.
    }
    patch = {
      metadata: { annotations: { [SUSPENDED_BY_ANNOTATION]: by, [SUSPENDED_AT_ANNOTATION]: at } },
      spec: { suspend: true },
    };
  } else if (action === 'resume') {
    // Resuming also asks for a pass now, as `flux resume` does.
    patch = {
      metadata: {
        annotations: {
          [SUSPENDED_BY_ANNOTATION]: null,
          [SUSPENDED_AT_ANNOTATION]: null,
          [RECONCILE_ANNOTATION]: at,
        },
      },
      spec: { suspend: null },
    };
  } else {
    patch = { metadata: { annotations: { [RECONCILE_ANNOTATION]: at } } };
  }
  try {
    await objects.patch(name, patch);
  } catch (err) {
    return fail(EXIT.cluster, `cannot ${action} ${what} in ${where}: ${apiErrorMessage(err)}`);
  }

  const result: ControlResult = {
    action,
    context: opts.context,
    namespace: opts.namespace,
    cluster,
    ...(opts.release ? { release: opts.release } : {}),
    suspended: action === 'suspend' ? true : action === 'resume' ? false : suspended,
    ...(action === 'suspend' ? {} : { requestedAt: at }),
  };
  let code: ExitCode = EXIT.ok;
  if (action === 'reconcile' && opts.wait) {
    const deadline = now() + timeoutSeconds * 1000;
    let seen: ControlledObject | undefined;
    while (now() < deadline) {
      await sleep(500);
      try {
        seen = await objects.get<ControlledObject>(name);
      } catch {
        continue;
      }
      if (seen.status?.lastHandledReconcileAt === at) break;
    }
    result.handled = seen?.status?.lastHandledReconcileAt === at;
    if (!result.handled) {
      result.error = `the agent did not handle the request within ${opts.timeout}`;
      code = EXIT.cluster;
    } else {
      result.result =
        (opts.release === undefined ? seen?.status?.lastPassOutcome : seen?.status?.state) ?? 'unknown';
      if (result.result === 'failed' || result.result === 'invalid') code = EXIT.failed;
      if (seen?.status?.lastError && code !== EXIT.ok) result.error = seen.status.lastError;
    }
  }

  if (opts.output !== 'text') {
    io.out(machine({ ok: code === EXIT.ok, ...result }, opts.output));
  } else if (action === 'suspend') {
    io.out(
      `suspended ${what} (context ${opts.context}): nothing is upgraded, pruned or drift-corrected until \`mooring resume\``,
    );
  } else if (action === 'resume') {
    io.out(`resumed ${what} (context ${opts.context}); a pass was requested`);
  } else if (!opts.wait) {
    io.out(`requested a reconcile of ${what} (context ${opts.context}) at ${at}`);
  } else if (result.handled) {
    io.out(
      `reconciled ${what} (context ${opts.context}): ${result.result}${result.error ? `: ${result.error}` : ''}`,
    );
  } else {
    io.err(
      `error: ${result.error} (is the agent running? \`kubectl -n ${opts.namespace} get mooringagents\`)`,
    );
  }
  return code;
}

/** The MooringAgent of `opts.cluster`, or the only one in the namespace. */
async function findAgent(
  client: Pick<RestClient, 'request'>,
  opts: ControlOptions,
): Promise<ControlledObject> {
  const list = await customResources(client, {
    group: MOORING_GROUP,
    version: MOORING_VERSION,
    plural: MOORING_KINDS.MooringAgent.plural,
    namespace: opts.namespace,
  }).list<ControlledObject>();
  const agents = list.items ?? [];
  const where = `namespace ${opts.namespace} of context ${opts.context}`;
  if (opts.cluster !== undefined) {
    const found = agents.find((a) => a.metadata.name === opts.cluster);
    if (found) return found;
    throw new MooringError(
      `no mooring agent for cluster ${opts.cluster} in ${where}`,
      {},
      {
        hint: agents.length
          ? `agents there: ${agents.map((a) => a.metadata.name).join(', ')}`
          : 'is -n/--namespace right?',
      },
    );
  }
  if (agents.length === 1) return agents[0]!;
  if (agents.length === 0) {
    throw new MooringError(
      `no mooring agent in ${where}`,
      {},
      {
        hint: 'an agent creates its MooringAgent object when it starts; is -n/--namespace right?',
      },
    );
  }
  throw new MooringError(
    `${agents.length} mooring agents in ${where}: say which with --cluster (${agents.map((a) => a.metadata.name).join(', ')})`,
    { field: '--cluster' },
  );
}

const DESCRIPTIONS: Record<ControlAction, string> = {
  suspend: 'suspend the agent, or one release: nothing is upgraded, pruned or drift-corrected until resumed',
  resume: 'resume a suspended agent or release, and ask for a pass now',
  reconcile: 'ask the agent for a pass now, forgetting retry backoff, and wait for its outcome',
};

const EXAMPLES: Record<ControlAction, string> = {
  suspend: `
Examples:
  mooring suspend --context prod-eu                  # the whole agent, during an incident
  mooring suspend --context prod-eu --release web    # one release; the others still converge
  kubectl -n mooring-system get mooringagents,mrel   # SUSPENDED / STATE suspended`,
  resume: `
Examples:
  mooring resume --context prod-eu
  mooring resume --context prod-eu --release web`,
  reconcile: `
Examples:
  mooring reconcile --context prod-eu                  # a full pass now, every backoff forgotten
  mooring reconcile --context prod-eu --release web    # retry web now; waits for its state
  mooring reconcile --context prod-eu --no-wait

Exit codes: 0 handled and converged, 1 the release or pass failed (or it is suspended),
2 wrong usage, 5 the cluster cannot be reached or the agent did not answer in time.`,
};

export function registerControl(program: Command, io: Io, done: (code: ExitCode) => void): void {
  for (const action of ['suspend', 'resume', 'reconcile'] as const) {
    const cmd = program
      .command(action)
      .description(DESCRIPTIONS[action])
      .requiredOption('--context <name>', 'the kube context of the cluster')
      .option('--release <name>', 'only this release (default: the whole agent)')
      .option('-n, --namespace <name>', "the agent's namespace", 'mooring-system')
      .option('--cluster <name>', 'the agent, when several share the namespace')
      .option('--timeout <duration>', 'reconcile: how long to wait for the agent', '2m')
      .option('--kubeconfig <file>', 'kubeconfig file (default: KUBECONFIG or ~/.kube/config)')
      .addOption(outputOption())
      .addHelpText('after', EXAMPLES[action]);
    if (action === 'reconcile') cmd.option('--no-wait', 'return once the request is recorded');
    cmd.action(async (opts: Omit<ControlOptions, 'wait'> & { wait?: boolean }) =>
      done(await control(action, { ...opts, wait: opts.wait ?? true }, io)),
    );
  }
}
