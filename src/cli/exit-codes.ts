// mooring's exit codes, documented in docs/cli.md. Scripts and CI depend on them.
export const EXIT = {
  /** Everything converged / the repository is valid. */
  ok: 0,
  /** Something in the repository or a release failed (validate errors, a failed converge). */
  failed: 1,
  /** The command line was wrong. */
  usage: 2,
  /** Manual mode: a plan waits for approval, nothing was applied. */
  pendingApproval: 3,
  /** The Git repository could not be reached, authenticated or read. */
  source: 4,
  /** The Kubernetes API could not be reached or refused the agent. */
  cluster: 5,
  /** A bug in mooring: please report it. */
  internal: 70,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
