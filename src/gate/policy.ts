// The admission policy that keeps approvals honest (an Approval must name its own requester
// as approver): shipped in the agent's chart, and applied by the agent at start-up so that
// approvals are safe on a bare cluster too, as ensureCrds does for the CRDs. An agent that
// may not write admission policies still works when the chart installed them.
//
// The rules are one plain file of the chart (files/approval-policy.yaml); the chart's
// template and approvalPolicyObjects() give it the same per-namespace name and binding (a
// differential test renders the chart and compares), so the agent finds what the chart
// installed, and a second install of the chart in another namespace has its own objects.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { MooringError } from '../errors.js';
import type { Kube } from '../kube/connect.js';
import { apiErrorMessage, isForbidden } from '../kube/errors.js';
import { serverSideApply, type AnyObject } from '../kube/objects.js';

/** src/gate and dist/gate are both two levels below the package root. */
export const APPROVAL_POLICY_FILE = fileURLToPath(
  new URL('../../charts/mooring/files/approval-policy.yaml', import.meta.url),
);

/** The policy and binding of the approvals in `namespace` (the chart names them the same). */
export function approvalPolicyName(namespace: string): string {
  return `mooring-approval-approver-${namespace}`;
}

const LABELS = { 'app.kubernetes.io/name': 'mooring', 'app.kubernetes.io/component': 'approval-policy' };

/**
 * The ValidatingAdmissionPolicy of the approvals in `namespace` and its binding, as the
 * chart renders them (less the chart's own labels).
 */
export function approvalPolicyObjects(namespace: string, file: string = APPROVAL_POLICY_FILE): AnyObject[] {
  const policy = parse(readFileSync(file, 'utf8')) as AnyObject | null;
  if (policy?.kind !== 'ValidatingAdmissionPolicy' || typeof policy.spec !== 'object') {
    throw new MooringError('expected a ValidatingAdmissionPolicy with a spec', { file });
  }
  const name = approvalPolicyName(namespace);
  return [
    { ...policy, metadata: { name, labels: LABELS } },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name, labels: LABELS },
      spec: {
        policyName: name,
        validationActions: ['Deny'],
        matchResources: {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
        },
      },
    },
  ];
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
 * Installs the approval policy of the approvals in `namespace` and its binding where they
 * are missing. Objects already in
 * place are left alone: the chart manages them, and re-applying them under another field
 * manager would make the next `helm upgrade` of the chart conflict. When an object can be
 * neither read nor written it is reported as unverified for the caller to warn about, and
 * the agent carries on.
 */
export async function ensureApprovalPolicy(
  clients: Pick<Kube, 'objects'>,
  options: { namespace: string; objects?: AnyObject[]; fieldManager?: string },
): Promise<EnsurePolicyResult> {
  const result: EnsurePolicyResult = { applied: [], alreadyPresent: [], unverified: [] };
  for (const object of options.objects ?? approvalPolicyObjects(options.namespace)) {
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
