import { describe, expect, it } from 'vitest';
import type { StorageSecret as V1Secret } from '../../src/converge/helm-storage.js';
import { observe, type StoredRevision } from '../../src/converge/helm-storage.js';
import { markLabels, pendingDeadline, readMark } from '../../src/converge/marks.js';

const digest = `sha256:${'ab'.repeat(32)}`;
const mark = {
  cluster: 'prod',
  namespace: 'mooring-system',
  replica: 'mooring-7d9f-x2',
  digest,
  revision: 'c0ffee'.padEnd(40, '0'),
  timeoutSeconds: 300,
  helmRevision: 7,
};

function secret(labels: Record<string, string>, created = '2026-01-01T10:00:00Z'): V1Secret {
  return { metadata: { name: 'sh.helm.release.v1.web.v7', labels, creationTimestamp: created } };
}

describe('marks on helm revisions', () => {
  it('are valid Kubernetes label values that name the agent, digest, commit, timeout and revision', () => {
    const labels = markLabels(mark);
    expect(labels).toEqual({
      'mooring.io/managed': 'true',
      'mooring.io/cluster': 'prod',
      'mooring.io/agent': 'mooring-system',
      'mooring.io/replica': 'mooring-7d9f-x2',
      'mooring.io/digest': 'ab'.repeat(31) + 'a',
      'mooring.io/revision': mark.revision,
      'mooring.io/timeout': '300',
      'mooring.io/helm-revision': '7',
    });
    for (const value of Object.values(labels)) expect(value.length).toBeLessThanOrEqual(63);
  });

  it('leave out a replica name that is not a valid label value', () => {
    expect(markLabels({ ...mark, replica: 'host name with spaces' })).not.toHaveProperty(
      'mooring.io/replica',
    );
  });

  it('read back as the agent (namespace and cluster), the digest and the helm revision', () => {
    expect(readMark({ ...markLabels(mark), owner: 'helm', status: 'deployed' })).toEqual({
      agent: 'mooring-system/prod',
      digest: 'ab'.repeat(31) + 'a',
      helmRevision: 7,
    });
    expect(readMark({ owner: 'helm', status: 'deployed' })).toBeUndefined();
    expect(readMark(undefined)).toBeUndefined();
  });
});

describe('pendingDeadline', () => {
  const created = Date.parse('2026-01-01T10:00:00Z');

  it('is the start of the helm process plus its marked timeout plus the grace', () => {
    expect(pendingDeadline(secret(markLabels(mark)).metadata!, 20, 30)).toBe(created + 330_000);
  });

  it('takes the latest start helm recorded (its own createdAt label, by its clock)', () => {
    const labels = { ...markLabels(mark), createdAt: String(created / 1000 + 5) };
    expect(pendingDeadline(secret(labels).metadata!, 20, 30)).toBe(created + 335_000);
  });

  it("assumes the desired release's timeout for a revision mooring did not mark", () => {
    expect(pendingDeadline(secret({ owner: 'helm' }).metadata!, 20, 30)).toBe(created + 50_000);
  });
});

describe('observe', () => {
  const rev = (revision: number, status: StoredRevision['status'], labels: Record<string, string>) => ({
    name: 'web',
    revision,
    status,
    secret: secret({ owner: 'helm', status, version: String(revision), ...labels }),
  });

  it('gives a pending latest revision its deadline, and the mark of the latest revision', () => {
    const seen = observe([rev(6, 'superseded', {}), rev(7, 'pending-upgrade', markLabels(mark))], {
      timeoutSeconds: 20,
      graceSeconds: 30,
    });
    expect(seen).toMatchObject({
      revision: 7,
      status: 'pending-upgrade',
      lastDeployedRevision: 6,
      pendingUntil: Date.parse('2026-01-01T10:00:00Z') + 330_000,
      mark: { agent: 'mooring-system/prod', helmRevision: 7 },
    });
    expect(
      observe([rev(7, 'deployed', markLabels(mark))], { timeoutSeconds: 20, graceSeconds: 30 }),
    ).not.toHaveProperty('pendingUntil');
  });

  it('reads the same from the metadata-only index as from a full read', () => {
    const indexed = (revision: number, status: StoredRevision['status'], labels: Record<string, string>) => ({
      name: 'web',
      namespace: 'apps',
      revision,
      status,
      labels: { owner: 'helm', status, version: String(revision), ...labels },
      creationTimestamp: '2026-01-01T10:00:00Z',
    });
    const options = { timeoutSeconds: 20, graceSeconds: 30 };
    const full = [rev(6, 'superseded', {}), rev(7, 'pending-upgrade', markLabels(mark))];
    const index = [indexed(6, 'superseded', {}), indexed(7, 'pending-upgrade', markLabels(mark))];
    expect(observe(index, options)).toEqual(observe(full, options));
    expect(observe(index, options)).toHaveProperty('pendingUntil');
  });
});
