// mooring's marks on the helm revisions it makes: helm 4 release labels (`--labels`), which
// helm keeps in the revision's record and on its storage Secret. They answer, from helm's
// own storage and whatever happened to the agent in between, two questions a crash leaves
// open: "did I make this revision, for which desired state?" (so a finished upgrade whose
// record was never written is recorded, not repeated) and "how long may the helm process
// that left this revision pending still be running?" (so a new leader does not run a
// second helm on the release while the first one may still work).
import { digestLabel, type ReleaseMark } from './decide.js';

export const MARK_LABELS = {
  managed: 'mooring.io/managed',
  cluster: 'mooring.io/cluster',
  /** The agent's namespace; with the cluster, the agent that ran helm. */
  agent: 'mooring.io/agent',
  /** The replica (pod) that ran helm, when its name is a valid label value. */
  replica: 'mooring.io/replica',
  /** The desired digest the revision was made for (see `digestLabel`). */
  digest: 'mooring.io/digest',
  /** The Git commit the revision was made from. */
  revision: 'mooring.io/revision',
  /** The helm `--timeout` of the process that made the revision, in seconds. */
  timeout: 'mooring.io/timeout',
  /**
   * The helm revision number the upgrade was expected to make. helm copies a release's
   * labels into the next revision (a later `helm upgrade` by hand, a rollback); this is how
   * such a copy is told from the revision mooring made.
   */
  helmRevision: 'mooring.io/helm-revision',
} as const;

export interface MarkInput {
  cluster: string;
  /** The agent's namespace. */
  namespace: string;
  replica?: string;
  digest: string;
  revision: string;
  timeoutSeconds: number;
  /** The revision number helm will give this upgrade (the latest stored one plus one). */
  helmRevision: number;
}

const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** The labels of a helm revision mooring makes. */
export function markLabels(input: MarkInput): Record<string, string> {
  return {
    [MARK_LABELS.managed]: 'true',
    [MARK_LABELS.cluster]: input.cluster,
    [MARK_LABELS.agent]: input.namespace,
    ...(input.replica !== undefined && LABEL_VALUE.test(input.replica) && input.replica !== ''
      ? { [MARK_LABELS.replica]: input.replica }
      : {}),
    [MARK_LABELS.digest]: digestLabel(input.digest),
    [MARK_LABELS.revision]: input.revision,
    [MARK_LABELS.timeout]: String(input.timeoutSeconds),
    [MARK_LABELS.helmRevision]: String(input.helmRevision),
  };
}

/** How an agent names itself in marks (compared with `ReleaseMark.agent`). */
export function agentMark(cluster: string, namespace: string): string {
  return `${namespace}/${cluster}`;
}

/** mooring's mark on a revision, from its storage Secret's labels; undefined when mooring did not make it. */
export function readMark(labels: Record<string, string> | undefined): ReleaseMark | undefined {
  const cluster = labels?.[MARK_LABELS.cluster];
  const namespace = labels?.[MARK_LABELS.agent];
  const digest = labels?.[MARK_LABELS.digest];
  const helmRevision = Number(labels?.[MARK_LABELS.helmRevision]);
  if (labels?.[MARK_LABELS.managed] !== 'true' || !cluster || !namespace || !digest) return undefined;
  return {
    agent: agentMark(cluster, namespace),
    digest,
    ...(Number.isInteger(helmRevision) && helmRevision > 0 ? { helmRevision } : {}),
  };
}

/** What marks are read from: a helm storage Secret's labels and creation time. */
export interface RevisionMetadata {
  labels?: Record<string, string> | undefined;
  creationTimestamp?: Date | string | undefined;
}

/**
 * Until when (ms since the epoch) the helm process that wrote this pending revision may
 * still be running: its start (the latest of the times helm's storage records for it) plus
 * its helm timeout (our mark, or `fallbackTimeoutSeconds` for a revision mooring did not
 * mark) plus `graceSeconds` for the work helm does around its wait.
 */
export function pendingDeadline(
  metadata: RevisionMetadata,
  fallbackTimeoutSeconds: number,
  graceSeconds: number,
): number | undefined {
  const labels = metadata.labels ?? {};
  const times = [
    toMs(metadata.creationTimestamp),
    // helm's own storage labels: Unix seconds, by the clock of the machine that ran helm.
    Number(labels.createdAt) * 1000,
    Number(labels.modifiedAt) * 1000,
  ].filter((t) => Number.isFinite(t) && t > 0);
  if (times.length === 0) return undefined;
  const marked = Number(labels[MARK_LABELS.timeout]);
  const timeout = Number.isFinite(marked) && marked > 0 ? marked : fallbackTimeoutSeconds;
  return Math.max(...times) + (timeout + graceSeconds) * 1000;
}

function toMs(t: Date | string | undefined): number {
  if (t === undefined) return NaN;
  return (t instanceof Date ? t : new Date(t)).getTime();
}
