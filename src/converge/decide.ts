// The release state machine: one pure function looks at what Git wants and what the
// cluster shows, and picks the next action. Nothing here runs helm or calls the API.
//
//   desired?  helm latest revision        record (last converge)         action
//   yes       none                        -                              install
//   yes       made by another mooring agent (its mark)                   owned elsewhere: untouched
//   yes       pending-*, helm may still run                              wait for its timeout
//   yes       pending-* (interrupted)     -                              unlock, then upgrade
//   yes       deployed, rev == recorded   digest == deployed digest      none
//   yes       deployed, marked by this agent with the desired digest     record (no helm)
//   yes       anything else                                              upgrade
//   yes       failed, same digest failed, retry not due yet              wait
//   no        exists, installed by us     prune on                       uninstall
//   no        exists, installed by us     prune off                      orphan (report only)
import type { HelmReleaseStatus } from './helm.js';

export interface DesiredState {
  digest: string;
  revision: string;
  /** This agent, as its marks on helm revisions name it (see `ReleaseMark`). */
  agent?: string;
}

/** What mooring writes on every helm revision it makes (helm release labels). */
export interface ReleaseMark {
  /** The agent that ran helm: its namespace and cluster (not the replica, which changes). */
  agent: string;
  /** The desired digest that revision was made for, in label form (see `digestLabel`). */
  digest: string;
  /** The revision number mooring expected helm to give it; a copied mark names another one. */
  helmRevision?: number;
}

/** The latest revision helm recorded for the release, read from helm's storage. */
export interface HelmObservation {
  revision: number;
  status: HelmReleaseStatus;
  /** The newest revision whose status is `deployed` (or superseded before it), if any. */
  lastDeployedRevision?: number;
  /**
   * For a pending latest revision: until when (ms since the epoch) the helm process that
   * made it may still be running, from its start time in helm's storage and its timeout.
   */
  pendingUntil?: number;
  /** mooring's mark on the latest revision, when mooring made it. */
  mark?: ReleaseMark;
}

/** What mooring recorded about its last converge of this release (MooringRelease status). */
export interface ConvergeRecord {
  deployedDigest?: string;
  /** The helm revision mooring's last successful converge produced. */
  helmRevision?: number;
  /** The digest of the last attempt that failed, and when it may be retried. */
  failedDigest?: string;
  retryAt?: number;
  /** Mooring installed it (so pruning may remove it). */
  managed: boolean;
}

export type Action =
  | { kind: 'install' }
  | { kind: 'upgrade'; reason: string }
  | { kind: 'unlock'; from: HelmReleaseStatus }
  /** A pending revision whose helm process may still be running: touch nothing until `until`. */
  | { kind: 'wait-pending'; from: HelmReleaseStatus; until: number }
  /**
   * The latest helm revision carries another mooring agent's mark (another agent namespace or
   * cluster name): that agent owns the release, and this one never takes it over.
   */
  | { kind: 'owned-elsewhere'; owner: string }
  /** This agent's own finished upgrade, not yet in its record (it crashed in between): record it. */
  | { kind: 'record' }
  | { kind: 'none' }
  | { kind: 'wait'; until: number }
  | { kind: 'uninstall' }
  | { kind: 'orphan' };

export const PENDING: readonly HelmReleaseStatus[] = [
  'pending-install',
  'pending-upgrade',
  'pending-rollback',
];

export function nextAction(input: {
  desired?: DesiredState;
  helm?: HelmObservation;
  record?: ConvergeRecord;
  prune: boolean;
  now: number;
}): Action {
  const { desired, helm, record, now } = input;
  if (!desired) {
    if (!helm || !record?.managed) return { kind: 'none' };
    return input.prune ? { kind: 'uninstall' } : { kind: 'orphan' };
  }
  if (!helm || helm.status === 'uninstalled') return retryGate(desired, record, now) ?? { kind: 'install' };
  const owner = helm.mark?.agent;
  if (desired.agent !== undefined && owner !== undefined && owner !== desired.agent) {
    return { kind: 'owned-elsewhere', owner };
  }
  if (PENDING.includes(helm.status)) {
    // Marking it failed while its helm still works would let a second helm run on the release.
    if (helm.pendingUntil !== undefined && now < helm.pendingUntil) {
      return { kind: 'wait-pending', from: helm.status, until: helm.pendingUntil };
    }
    return { kind: 'unlock', from: helm.status };
  }
  const upToDate =
    helm.status === 'deployed' &&
    record?.deployedDigest === desired.digest &&
    record.helmRevision === helm.revision;
  if (upToDate) return { kind: 'none' };
  const ownFinishedUpgrade =
    helm.status === 'deployed' &&
    desired.agent !== undefined &&
    helm.mark?.agent === desired.agent &&
    helm.mark.digest === digestLabel(desired.digest) &&
    helm.mark.helmRevision === helm.revision;
  if (ownFinishedUpgrade) return { kind: 'record' };
  const gate = retryGate(desired, record, now);
  if (gate) return gate;
  if (helm.status !== 'deployed') return { kind: 'upgrade', reason: `the release is ${helm.status}` };
  if (record?.helmRevision !== undefined && record.helmRevision !== helm.revision) {
    return { kind: 'upgrade', reason: `helm revision ${helm.revision} was made outside mooring` };
  }
  return {
    kind: 'upgrade',
    reason: record?.deployedDigest ? 'the desired state changed' : 'first converge by mooring',
  };
}

/** The same desired state failed recently: wait for the retry time instead of hammering helm. */
function retryGate(
  desired: DesiredState,
  record: ConvergeRecord | undefined,
  now: number,
): Action | undefined {
  if (record?.failedDigest === desired.digest && record.retryAt !== undefined && record.retryAt > now) {
    return { kind: 'wait', until: record.retryAt };
  }
  return undefined;
}

/** A desired digest (`sha256:<hex>`) as a label value: its hex, cut to the 63 characters labels allow. */
export function digestLabel(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 63);
}

/** Retry delay after `failures` consecutive failures of the same desired state: 30s doubling to 30m. */
export function retryDelaySeconds(failures: number): number {
  return Math.min(30 * 2 ** Math.max(0, failures - 1), 1800);
}
