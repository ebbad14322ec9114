// The agent's seal on the MooringPlans it publishes. A plan is the agent's record that it saw
// a revision at the head of its branch and what applying it would do; whoever may patch a
// MooringPlan's status could otherwise invent that record (a plan for a feature-branch commit)
// or change what an approver is shown. The seal is an HMAC over everything in the status
// except the fields that change as the plan is used (phase, reason, approval, appliedAt),
// keyed with a random key only the agent reads: a Secret in its namespace, created on first
// start. Whoever can read Secrets in the agent's namespace can forge a seal; they can also
// read the agent's credentials, so that adds nothing.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { MooringError } from '../errors.js';
import { apiErrorMessage, isAlreadyExists, isNotFound } from '../kube/errors.js';
import type { RestClient } from '../kube/rest.js';
import { canonicalJson } from '../plan/digest.js';
import type { PlanStatus } from './plans.js';

export const PLAN_KEY_SECRET = 'mooring-plan-key';
const KEY_FIELD = 'key';

/** Status fields the agent changes after publishing a plan; everything else is sealed. */
const UNSEALED: readonly string[] = [
  'phase',
  'reason',
  'approval',
  'approvedBy',
  'appliedAt',
  'seal',
  // Derived from the phase (plans.ts), for kstatus.
  'conditions',
];

/** `hmac-sha256:<hex>` over the sealed fields of `status`. */
export function sealOf(key: Buffer, status: PlanStatus): string {
  const sealed = Object.fromEntries(Object.entries(status).filter(([k]) => !UNSEALED.includes(k)));
  return `hmac-sha256:${createHmac('sha256', key).update(canonicalJson(sealed)).digest('hex')}`;
}

/** Whether `status` carries the seal this key makes of it. */
export function sealVerifies(key: Buffer, status: PlanStatus): boolean {
  if (!status.seal) return false;
  const want = Buffer.from(sealOf(key, status));
  const got = Buffer.from(status.seal);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** The agent's plan key: read from its Secret, or created there (random) on first start. */
export async function loadPlanKey(
  client: Pick<RestClient, 'request'>,
  namespace: string,
  random: (size: number) => Buffer = randomBytes,
): Promise<Buffer> {
  const secrets = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
  const read = async (): Promise<Buffer | undefined> => {
    try {
      const secret = await client.request<{ data?: Record<string, string> }>(
        'GET',
        `${secrets}/${PLAN_KEY_SECRET}`,
      );
      const value = secret.data?.[KEY_FIELD];
      if (!value) {
        throw new MooringError(
          `Secret ${namespace}/${PLAN_KEY_SECRET} has no data.${KEY_FIELD}; delete it and the agent makes a new one`,
        );
      }
      return Buffer.from(value, 'base64');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      if (err instanceof MooringError) throw err;
      throw new MooringError(
        `cannot read the plan key Secret ${namespace}/${PLAN_KEY_SECRET}: ${apiErrorMessage(err)}`,
        {},
        { cause: err },
      );
    }
  };
  const existing = await read();
  if (existing) return existing;
  try {
    await client.request('POST', secrets, {
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: PLAN_KEY_SECRET,
          namespace,
          labels: { 'app.kubernetes.io/managed-by': 'mooring' },
        },
        type: 'Opaque',
        data: { [KEY_FIELD]: random(32).toString('base64') },
      },
    });
  } catch (err) {
    // Another replica made it first: use theirs.
    if (!isAlreadyExists(err)) {
      throw new MooringError(
        `cannot create the plan key Secret ${namespace}/${PLAN_KEY_SECRET}: ${apiErrorMessage(err)}`,
        {},
        { cause: err },
      );
    }
  }
  const made = await read();
  if (!made) throw new MooringError(`the plan key Secret ${namespace}/${PLAN_KEY_SECRET} vanished`);
  return made;
}
