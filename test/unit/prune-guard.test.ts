// SPEC §8: which revisions the prune guard refuses. The agent's behaviour around it (exit
// code, Event, nothing uninstalled) is in test/integration/agent-prune.test.ts.
import { describe, expect, it } from 'vitest';
import { pruneRefusal } from '../../src/converge/prune-guard.js';

const managed = [
  { name: 'web', state: 'ready' },
  { name: 'worker', state: 'failed' },
  { name: 'old', state: 'pruned' },
];

describe('the prune guard', () => {
  it('refuses a revision that declares no releases while some are installed, failed ones included', () => {
    const refusal = pruneRefusal({ declared: [], managed, prune: true, allowEmpty: false });
    expect(refusal).toMatch(
      /uninstall every release of the cluster \(web, worker\): it declares no releases/,
    );
  });

  it('refuses a revision whose declared releases replace every installed one', () => {
    const refusal = pruneRefusal({ declared: [{ name: 'api' }], managed, prune: true, allowEmpty: false });
    expect(refusal).toMatch(/none of the releases it declares for this cluster is installed yet/);
  });

  it('lets a revision through that keeps one installed release', () => {
    expect(pruneRefusal({ declared: [{ name: 'worker' }], managed, prune: true, allowEmpty: false })).toBe(
      undefined,
    );
  });

  it('has nothing to guard without --prune, with --prune-allow-empty, or on an empty cluster', () => {
    expect(pruneRefusal({ declared: [], managed, prune: false, allowEmpty: false })).toBe(undefined);
    expect(pruneRefusal({ declared: [], managed, prune: true, allowEmpty: true })).toBe(undefined);
    const onlyPruned = [{ name: 'old', state: 'pruned' }];
    expect(pruneRefusal({ declared: [], managed: onlyPruned, prune: true, allowEmpty: false })).toBe(
      undefined,
    );
  });
});
