// The release state machine: one pure function looks at what Git wants and what the
// cluster shows, and picks the next action. Nothing here runs helm or calls the API.
//
//   desired?  helm latest revision        record (last converge)         action
//   yes       none                        -                              install
//   yes       pending-* (interrupted)     -                              unlock, then upgrade
//   yes       deployed, rev == recorded   digest == deployed digest      none
//   yes       anything else                                              upgrade
//   yes       failed, same digest failed, retry not due yet              wait
//   no        exists, installed by us     prune on                       uninstall
//   no        exists, installed by us     prune off                      orphan (report only)
import type { HelmReleaseStatus } from './helm.js';

export interface DesiredState {
  digest: string;
  revision: string;
}

/** The latest revision helm recorded for the release, read from helm's storage. */
export interface HelmObservation {
  revision: number;
  status: HelmReleaseStatus;
  /** The newest revision whose status is `deployed` (or superseded before it), if any. */
  lastDeployedRevision?: number;
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
  if (PENDING.includes(helm.status)) return { kind: 'unlock', from: helm.status };
  const upToDate =
    helm.status === 'deployed' &&
    record?.deployedDigest === desired.digest &&
    record.helmRevision === helm.revision;
  if (upToDate) return { kind: 'none' };
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

/** Retry delay after `failures` consecutive failures of the same desired state: 30s doubling to 30m. */
export function retryDelaySeconds(failures: number): number {
  return Math.min(30 * 2 ** Math.max(0, failures - 1), 1800);
}
