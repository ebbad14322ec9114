// `clusters/<cluster>/cluster.yaml`: the identity of one cluster, and how strict its sync is.
import { validate, object, str, dnsLabel, record, oneOf, type Schema } from './schema.js';

export type SyncMode = 'auto' | 'manual';

export interface ClusterSpec {
  /** The folder name under clusters/. */
  name: string;
  environment: string;
  region?: string;
  cloud?: string;
  labels: Record<string, string>;
  /** May only make the agent stricter: `manual` here wins over an `auto` agent. */
  sync?: { mode: SyncMode };
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

const clusterFile: Schema<{
  environment: string;
  region?: string;
  cloud?: string;
  labels?: Record<string, string>;
  sync?: { mode?: SyncMode };
}> = object(
  {
    environment: dnsLabel(),
    region: str(),
    cloud: str(),
    labels: record(
      str({ pattern: LABEL_VALUE, patternHelp: 'a Kubernetes label value (at most 63 characters)' }),
      str({ pattern: LABEL_KEY, patternHelp: 'a Kubernetes label key' }),
    ),
    sync: object({ mode: oneOf(['auto', 'manual'] as const) }),
  },
  { required: ['environment'] },
);

export function parseClusterSpec(name: string, doc: unknown, file: string): ClusterSpec {
  const v = validate(clusterFile, doc, file);
  return {
    name,
    environment: v.environment,
    ...(v.region !== undefined ? { region: v.region } : {}),
    ...(v.cloud !== undefined ? { cloud: v.cloud } : {}),
    labels: v.labels ?? {},
    ...(v.sync?.mode ? { sync: { mode: v.sync.mode } } : {}),
  };
}

/** `global.cluster`, injected into every release's values (SPEC 2, layer 5). */
export function clusterIdentity(c: ClusterSpec): Record<string, unknown> {
  return {
    name: c.name,
    environment: c.environment,
    region: c.region ?? '',
    cloud: c.cloud ?? '',
    labels: { ...c.labels },
  };
}
