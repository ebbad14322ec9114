// The admission policy that keeps approvals honest (an Approval must name its own requester
// as approver): shipped in the agent's chart, and applied by the agent at start-up so that
// approvals are safe on a bare cluster too, as ensureCrds does for the CRDs. An agent that
// may not write admission policies still works when the chart installed them.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { MooringError } from '../errors.js';
import {
  apiErrorMessage,
  isForbidden,
  serverSideApply,
  type AnyObject,
  type KubeClients,
} from '../kube/client.js';

/** src/gate and dist/gate are both two levels below the package root. */
export const APPROVAL_POLICY_FILE = fileURLToPath(
  new URL('../../charts/mooring/templates/validatingadmissionpolicy.yaml', import.meta.url),
);

export const APPROVAL_POLICY_NAME = 'mooring-approval-approver';

/** The ValidatingAdmissionPolicy and its binding, as the chart ships them. */
export function loadApprovalPolicy(file: string = APPROVAL_POLICY_FILE): AnyObject[] {
  const objects = parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as AnyObject | null)
    .filter((o): o is AnyObject => o !== null);
  const kinds = objects.map((o) => o.kind);
  if (!kinds.includes('ValidatingAdmissionPolicy') || !kinds.includes('ValidatingAdmissionPolicyBinding')) {
    throw new MooringError('expected a ValidatingAdmissionPolicy and its binding', { file });
  }
  return objects;
}

export interface EnsurePolicyResult {
  /** Objects applied by this call (`Kind/name`). */
  applied: string[];
  /** Objects we may not write; they were found in place. */
  alreadyPresent: string[];
  /** Objects we may neither write nor read: approvals are not protected unless the chart installed them. */
  unverified: string[];
}

/**
 * Installs the approval policy and its binding where they are missing. Objects already in
 * place are left alone: the chart manages them, and re-applying them under another field
 * manager would make the next `helm upgrade` of the chart conflict. When an object can be
 * neither read nor written it is reported as unverified for the caller to warn about, and
 * the agent carries on.
 */
export async function ensureApprovalPolicy(
  clients: Pick<KubeClients, 'objects'>,
  options: { objects?: AnyObject[]; fieldManager?: string } = {},
): Promise<EnsurePolicyResult> {
  const result: EnsurePolicyResult = { applied: [], alreadyPresent: [], unverified: [] };
  for (const object of options.objects ?? loadApprovalPolicy()) {
    const id = `${object.kind}/${object.metadata?.name}`;
    let present: boolean | undefined;
    try {
      present = (await clients.objects.readRaw(object)) !== undefined;
    } catch (readErr) {
      if (!isForbidden(readErr)) throw readErr;
    }
    if (present === true) {
      result.alreadyPresent.push(id);
      continue;
    }
    try {
      await serverSideApply(clients, object, {
        fieldManager: options.fieldManager ?? 'mooring',
        force: true,
      });
      result.applied.push(id);
    } catch (err) {
      if (!isForbidden(err)) {
        throw new MooringError(
          `cannot install ${id}: ${apiErrorMessage(err)}`,
          {},
          { hint: 'ValidatingAdmissionPolicy needs Kubernetes 1.30 or later', cause: err },
        );
      }
      result.unverified.push(id);
    }
  }
  return result;
}
