// Correcting one drifted object, without helm and without a new helm revision: a server-side
// apply of the recorded object with force, as helm's own field manager, restores modified and
// removed fields and recreates a deleted object; ignored fields are applied at their live
// values so a correction never moves them. Fields added by hand are then removed with a JSON
// patch guarded by the object's resourceVersion, so nothing changed in between is removed.
import { apiErrorMessage } from '../../kube/errors.js';
import type { DriftObjectApi } from './api.js';
import { resolvePath } from './fieldset.js';
import { ignoresFor, keepIgnoredAsLive } from './ignore.js';
import { removalPatch, type Finding } from './inspect.js';
import { refOf } from './live.js';
import type { Segment } from './pointer.js';

export interface Correction {
  /** Drift items restored: the object (when it was deleted) or its fields. */
  corrected: number;
  error?: string;
}

export async function correctObject(api: DriftObjectApi, finding: Finding): Promise<Correction> {
  const { check, manager } = finding;
  if (finding.terminating) {
    return { corrected: 0, error: 'it is being deleted; it is recreated once it is gone' };
  }
  let corrected = 0;
  let current = finding.live;
  try {
    if (finding.deleted || finding.modified.length > 0) {
      const desired = keepIgnoredAsLive(check.recorded, finding.live, ignoresFor(finding.rules, check.id));
      current = await api.applyRaw(desired, { fieldManager: manager, force: true, dryRun: false });
      corrected += finding.deleted ? 1 : finding.modified.length;
    }
    if (finding.added.length > 0 && current !== undefined) {
      const target = current;
      const at = finding.added
        .map((a) => resolvePath(target, a.path))
        .filter((s): s is Segment[] => s !== undefined);
      if (at.length > 0)
        await api.jsonPatchRaw(refOf(check.id), removalPatch(target, at), { fieldManager: manager });
      corrected += finding.added.length;
    }
  } catch (err) {
    return { corrected, error: apiErrorMessage(err) };
  }
  return { corrected };
}
