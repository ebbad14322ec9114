// The Git source's public surface, for the agent: track a branch as immutable snapshots,
// poll it with backoff, fetch exact revisions for approvals, verify push webhooks.
export { Backoff, type BackoffOptions } from './backoff.js';
export { DEFAULT_TOKEN_USERNAME, redactUrl } from './credentials.js';
export { GitSourceError, type GitFailureReason } from './errors.js';
export {
  GitSource,
  type GitSourceOptions,
  type PollResult,
  type Snapshot,
  type SnapshotHold,
  type SourceLogger,
  type SourceStatus,
  type SyncResult,
} from './git-source.js';
export { createHttpClient, type NodeHttpClient, type TransferStats } from './http-client.js';
export { SourcePoller, type SourcePollerOptions } from './poller.js';
export { verifyWebhook, type WebhookRequest, type WebhookVerdict } from './webhook.js';
