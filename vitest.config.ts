import { defineConfig } from 'vitest/config';

// Two projects: `unit` (no external processes, no global setup) and `integration` (real
// helm, git, sops and one shared control plane started by test/rig/global-setup.ts).
// Run one with `npx vitest run --project unit` or `--project integration`.
export default defineConfig({
  test: {
    // Integration tests share one control plane and spawn helm: two cores, so few workers.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ['default', './test/rig/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/rig/global-setup.ts'],
        },
      },
    ],
  },
});
