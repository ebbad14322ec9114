// How drift is told: the MooringRelease status summary and the Event messages. Both name
// objects and fields (JSON pointers), never values: a Secret's drifted data shows up as
// `Secret/web/db:/data/password`, and error texts from the API server are passed through
// the release's secret strings before they are shown.
import { redactSecrets } from '../../secrets/redact.js';
import type { DriftSummary } from '../status.js';
import { describeObject, type ObjectId } from './objects.js';

/** What one release's check found, described for people. */
export interface ReleaseDrift {
  /** `<object>:<pointer>` of fields a correction restores. */
  modified: string[];
  /** `<object>:<pointer>` of fields added by hand. */
  added: string[];
  /** `<object>` of deleted objects. */
  deleted: string[];
  /** Objects that could not be checked, with why (redacted). */
  failed: string[];
  /** `<object>:<pointer>` -> the field managers that changed it (from managedFields). */
  managers?: Record<string, string[]>;
}

type Told = Pick<ReleaseDrift, 'modified' | 'added' | 'deleted' | 'managers'>;

/** A field as messages name it: with the managers that changed it, when known. */
function withManagers(field: string, managers: ReleaseDrift['managers']): string {
  const who = managers?.[field];
  return who && who.length > 0 ? `${field} (by ${who.join(', ')})` : field;
}

export function describeField(id: ObjectId, pointer: string): string {
  return `${describeObject(id)}:${pointer}`;
}

export function driftCount(drift: Pick<ReleaseDrift, 'modified' | 'added' | 'deleted'>): number {
  return drift.modified.length + drift.added.length + drift.deleted.length;
}

/** Items joined until the message would pass `budget` characters, then "and N more". */
export function listWithin(items: readonly string[], budget: number): string {
  let out = '';
  for (const [i, item] of items.entries()) {
    const next = out === '' ? item : `${out}, ${item}`;
    if (next.length > budget && i > 0) return `${out} and ${items.length - i} more`;
    out = next;
  }
  return out;
}

/** Events are cut at 1024 bytes; keep room for the counts in front. */
const LIST_BUDGET = 760;

function parts(drift: Told, verbs: [string, string, string]): string {
  const sections: [string, string[]][] = [
    [verbs[0], drift.modified.map((f) => withManagers(f, drift.managers))],
    [verbs[1], drift.deleted],
    [verbs[2], drift.added.map((f) => withManagers(f, drift.managers))],
  ];
  const present = sections.filter(([, items]) => items.length > 0);
  const share = Math.floor(LIST_BUDGET / Math.max(1, present.length));
  return present.map(([verb, items]) => `${verb} ${listWithin(items, share)}`).join('; ');
}

export function detectedMessage(revision: number, drift: ReleaseDrift, mode: 'correct' | 'warn'): string {
  const counts = `${drift.modified.length} modified field(s), ${drift.deleted.length} deleted object(s), ${drift.added.length} field(s) added by hand`;
  const tail = mode === 'warn' ? ' (drift mode warn: left as it is)' : '';
  return `live objects differ from helm revision ${revision}: ${counts}${tail}: ${parts(drift, ['modified', 'deleted', 'added by hand'])}`;
}

export function correctedMessage(revision: number, drift: Told): string {
  return `restored helm revision ${revision} without a new revision: ${parts(drift, ['restored', 'recreated', 'removed'])}`;
}

export function failureMessage(what: string, failures: readonly string[]): string {
  return `${what}: ${listWithin(failures, LIST_BUDGET)}`;
}

export function summaryOf(
  drift: ReleaseDrift,
  corrected: boolean,
  checkedAt: number,
  mode: 'correct' | 'warn' = 'correct',
): DriftSummary {
  const fields = [...drift.modified, ...drift.added];
  const fieldManagers = fields
    .filter((field) => (drift.managers?.[field] ?? []).length > 0)
    .map((field) => ({ field, managers: drift.managers![field]! }));
  return {
    count: driftCount(drift),
    fields,
    ...(fieldManagers.length > 0 ? { fieldManagers } : {}),
    deletedObjects: [...drift.deleted],
    corrected,
    mode,
    ...(drift.failed.length > 0 ? { failed: drift.failed.length, failures: [...drift.failed].sort() } : {}),
    checkedAt: new Date(checkedAt).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
}

/** Whether two summaries say the same, apart from when they were made. */
export function sameSummary(a: DriftSummary | undefined, b: DriftSummary): boolean {
  return (
    a !== undefined &&
    a.count === b.count &&
    a.corrected === b.corrected &&
    a.mode === b.mode &&
    (a.failed ?? 0) === (b.failed ?? 0) &&
    JSON.stringify(a.failures ?? []) === JSON.stringify((b.failures ?? []).slice(0, 50)) &&
    JSON.stringify(a.fields ?? []) === JSON.stringify(b.fields.slice(0, 50)) &&
    JSON.stringify(a.fieldManagers ?? []) === JSON.stringify((b.fieldManagers ?? []).slice(0, 50)) &&
    JSON.stringify(a.deletedObjects ?? []) === JSON.stringify(b.deletedObjects.slice(0, 50))
  );
}

export function redact(text: string, secrets: readonly string[]): string {
  return secrets.length === 0 ? text : redactSecrets(text, secrets);
}
