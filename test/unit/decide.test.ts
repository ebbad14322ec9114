import { describe, expect, it } from 'vitest';
import { digestLabel, nextAction, retryDelaySeconds } from '../../src/converge/decide.js';

const desired = { digest: 'sha256:new', revision: 'abc' };
const now = 1_000_000;

describe('nextAction', () => {
  it('installs a release helm does not know', () => {
    expect(nextAction({ desired, prune: false, now })).toEqual({ kind: 'install' });
  });

  it('does nothing when the deployed digest and helm revision match the record', () => {
    expect(
      nextAction({
        desired,
        helm: { revision: 3, status: 'deployed' },
        record: { deployedDigest: 'sha256:new', helmRevision: 3, managed: true },
        prune: false,
        now,
      }),
    ).toEqual({ kind: 'none' });
  });

  it('upgrades when the desired state changed', () => {
    const action = nextAction({
      desired,
      helm: { revision: 3, status: 'deployed' },
      record: { deployedDigest: 'sha256:old', helmRevision: 3, managed: true },
      prune: false,
      now,
    });
    expect(action).toEqual({ kind: 'upgrade', reason: 'the desired state changed' });
  });

  it('upgrades when someone ran helm by hand since the last converge', () => {
    const action = nextAction({
      desired,
      helm: { revision: 4, status: 'deployed' },
      record: { deployedDigest: 'sha256:new', helmRevision: 3, managed: true },
      prune: false,
      now,
    });
    expect(action).toMatchObject({ kind: 'upgrade', reason: expect.stringContaining('outside mooring') });
  });

  it('unlocks a release left pending by an interrupted helm process', () => {
    for (const status of ['pending-install', 'pending-upgrade', 'pending-rollback'] as const) {
      expect(nextAction({ desired, helm: { revision: 2, status }, prune: false, now })).toEqual({
        kind: 'unlock',
        from: status,
      });
    }
  });

  it('leaves a pending revision alone while its helm process may still run, then unlocks it', () => {
    const helm = { revision: 2, status: 'pending-upgrade' as const, pendingUntil: now + 30_000 };
    expect(nextAction({ desired, helm, prune: false, now })).toEqual({
      kind: 'wait-pending',
      from: 'pending-upgrade',
      until: now + 30_000,
    });
    expect(nextAction({ desired, helm, prune: false, now: now + 30_000 })).toEqual({
      kind: 'unlock',
      from: 'pending-upgrade',
    });
  });

  describe("recognising this agent's own finished upgrade after a crash", () => {
    const agent = 'mooring-system/prod';
    const own = { desired: { ...desired, agent }, prune: false, now };
    // The record still describes revision 3: the agent died before writing revision 4 down.
    const record = { deployedDigest: 'sha256:old', helmRevision: 3, managed: true };
    const mark = { agent, digest: digestLabel('sha256:new'), helmRevision: 4 };

    it('records a deployed revision it marked for the desired digest, without helm', () => {
      expect(nextAction({ ...own, helm: { revision: 4, status: 'deployed', mark }, record })).toEqual({
        kind: 'record',
      });
    });

    it('even when a failed attempt of that digest had scheduled a retry', () => {
      const failed = { ...record, failedDigest: 'sha256:new', retryAt: now + 60_000 };
      expect(nextAction({ ...own, helm: { revision: 4, status: 'deployed', mark }, record: failed })).toEqual(
        { kind: 'record' },
      );
    });

    it('never touches a release another mooring agent marked: it is owned elsewhere', () => {
      for (const status of ['deployed', 'failed', 'pending-upgrade'] as const) {
        for (const other of ['other-ns/prod', 'mooring-system/staging']) {
          const helm = { revision: 4, status, mark: { ...mark, agent: other }, pendingUntil: now - 1 };
          expect(nextAction({ ...own, helm, record })).toEqual({ kind: 'owned-elsewhere', owner: other });
        }
      }
    });

    it('upgrades when the mark is not for the desired digest, or copied into a later revision', () => {
      const cases = [
        { ...mark, digest: digestLabel('sha256:old') },
        // helm copies labels into the next revision (a manual `helm upgrade`, a rollback).
        { ...mark, helmRevision: 3 },
        { agent, digest: mark.digest },
      ];
      for (const m of cases) {
        expect(
          nextAction({ ...own, helm: { revision: 4, status: 'deployed', mark: m }, record }),
        ).toMatchObject({ kind: 'upgrade' });
      }
      expect(nextAction({ ...own, helm: { revision: 4, status: 'failed', mark }, record })).toMatchObject({
        kind: 'upgrade',
      });
    });
  });

  it('waits before retrying the same failed desired state, then retries', () => {
    const record = {
      deployedDigest: 'sha256:old',
      helmRevision: 3,
      failedDigest: 'sha256:new',
      retryAt: now + 60_000,
      managed: true,
    };
    const helm = { revision: 4, status: 'failed' as const };
    expect(nextAction({ desired, helm, record, prune: false, now })).toEqual({
      kind: 'wait',
      until: now + 60_000,
    });
    expect(nextAction({ desired, helm, record, prune: false, now: now + 60_001 })).toMatchObject({
      kind: 'upgrade',
    });
  });

  it('retries at once when a new desired state replaces the one that failed', () => {
    const record = { failedDigest: 'sha256:broken', retryAt: now + 60_000, managed: true };
    expect(
      nextAction({ desired, helm: { revision: 1, status: 'failed' }, record, prune: false, now }),
    ).toMatchObject({ kind: 'upgrade' });
  });

  it('uninstalls a release removed from Git only when pruning, and only if mooring installed it', () => {
    const helm = { revision: 2, status: 'deployed' as const };
    expect(nextAction({ helm, record: { managed: true }, prune: true, now })).toEqual({ kind: 'uninstall' });
    expect(nextAction({ helm, record: { managed: true }, prune: false, now })).toEqual({ kind: 'orphan' });
    expect(nextAction({ helm, record: { managed: false }, prune: true, now })).toEqual({ kind: 'none' });
    expect(nextAction({ helm, prune: true, now })).toEqual({ kind: 'none' });
  });

  it('backs off exponentially up to 30 minutes', () => {
    expect([1, 2, 3, 10, 20].map(retryDelaySeconds)).toEqual([30, 60, 120, 1800, 1800]);
  });
});
