// Where the API server is and who we are to it, read the way kubectl reads it: an explicit
// kubeconfig file, else KUBECONFIG (a list of files, merged: the first file to set a name
// wins), else the pod's service account, else ~/.kube/config. What mooring needs of it is an
// Endpoint for src/kube/rest.ts: the server, its CA, and credentials (a token, a token file,
// a client certificate, basic auth, an exec plugin). Two rarer things, `auth-provider`
// users and a cluster's `proxy-url`, are handed to @kubernetes/client-node, loaded only then:
// importing it costs ~70 MiB, more than the rest of the agent.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { MooringError } from '../errors.js';
import type { Endpoint, TlsAndHeaders } from './rest.js';

export interface KubeConfigOptions {
  /** A kubeconfig file to use instead of KUBECONFIG / in-cluster discovery. */
  kubeconfig?: string;
  /** A context name (`--context`); defaults to the kubeconfig's current context. */
  context?: string;
  env?: Record<string, string | undefined>;
  /** Where a pod finds its service account (tests point it elsewhere). */
  serviceAccountDir?: string;
}

/** The API server of one context and how to reach it. */
export interface KubeTarget extends Endpoint {
  /** The context's name (`in-cluster` for a pod's service account). */
  context: string;
  /** The names of every context of the kubeconfig. */
  contexts: string[];
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface Named<T> {
  name: string;
  value: T;
}
interface ClusterEntry {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
}
interface UserEntry {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  username?: string;
  password?: string;
  as?: string;
  'as-groups'?: string[];
  exec?: ExecConfig;
  'auth-provider'?: unknown;
}
interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  apiVersion?: string;
}
interface ContextEntry {
  cluster?: string;
  user?: string;
}

/** A kubeconfig after merging, paths made absolute. */
interface Merged {
  currentContext?: string;
  clusters: Map<string, ClusterEntry>;
  users: Map<string, UserEntry>;
  contexts: Map<string, ContextEntry>;
  /** The files read, for messages. */
  files: string[];
}

/** Loads the kubeconfig (see the module header) and picks the context. */
export function loadKubeTarget(options: KubeConfigOptions = {}): KubeTarget {
  const env = options.env ?? process.env;
  const saDir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  let merged: Merged;
  try {
    if (options.kubeconfig !== undefined) {
      merged = mergeFiles([options.kubeconfig], true);
    } else if (
      (env.KUBECONFIG ?? '') === '' &&
      env.KUBERNETES_SERVICE_HOST !== undefined &&
      existsSync(join(saDir, 'token'))
    ) {
      return inCluster(env, saDir);
    } else if ((env.KUBECONFIG ?? '') !== '') {
      merged = mergeFiles(
        env.KUBECONFIG!.split(':').filter((f) => f !== ''),
        false,
      );
    } else {
      const home = env.HOME ?? homedir();
      merged = mergeFiles([join(home, '.kube', 'config')], false);
    }
  } catch (err) {
    throw new MooringError(
      `cannot load the kubeconfig${options.kubeconfig === undefined ? '' : ` ${options.kubeconfig}`}: ${err instanceof Error ? err.message : String(err)}`,
      options.kubeconfig === undefined ? {} : { file: options.kubeconfig },
      { cause: err },
    );
  }
  const contexts = [...merged.contexts.keys()];
  const name = options.context ?? merged.currentContext;
  if (options.context !== undefined && !merged.contexts.has(options.context)) {
    throw new MooringError(
      `kubeconfig has no context named ${options.context}`,
      {},
      {
        hint:
          contexts.length === 0
            ? 'the kubeconfig defines no contexts'
            : `known contexts: ${contexts.join(', ')}`,
      },
    );
  }
  const context = name === undefined ? undefined : merged.contexts.get(name);
  const cluster = context?.cluster === undefined ? undefined : merged.clusters.get(context.cluster);
  if (name === undefined || cluster?.server === undefined) {
    throw new MooringError(
      'no Kubernetes cluster configured',
      {},
      { hint: 'run inside a cluster, set KUBECONFIG, or pass --context' },
    );
  }
  const user = (context?.user === undefined ? undefined : merged.users.get(context.user)) ?? {};
  if (user['auth-provider'] !== undefined || cluster['proxy-url'] !== undefined) {
    return { ...viaClientNode(merged.files, name), context: name, contexts };
  }
  return { ...endpointFor(cluster as ClusterEntry & { server: string }, user, env), context: name, contexts };
}

function mergeFiles(files: string[], mustExist: boolean): Merged {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map(), files: [] };
  for (const file of files) {
    if (!mustExist && !existsSync(file)) continue;
    const path = resolve(file);
    const doc = (parse(readFileSync(path, 'utf8')) ?? {}) as {
      'current-context'?: string;
      clusters?: Named<ClusterEntry>[] | null;
      users?: Named<UserEntry>[] | null;
      contexts?: Named<ContextEntry>[] | null;
    } & Record<string, unknown>;
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${file} is not a kubeconfig`);
    merged.files.push(path);
    if (merged.currentContext === undefined && doc['current-context']) {
      merged.currentContext = doc['current-context'];
    }
    const base = dirname(path);
    const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : join(base, p));
    for (const c of doc.clusters ?? []) {
      const value = (c as unknown as Record<string, ClusterEntry>).cluster ?? {};
      if (!merged.clusters.has(c.name)) {
        merged.clusters.set(c.name, {
          ...value,
          ...(value['certificate-authority']
            ? { 'certificate-authority': abs(value['certificate-authority'])! }
            : {}),
        });
      }
    }
    for (const u of doc.users ?? []) {
      const value = (u as unknown as Record<string, UserEntry>).user ?? {};
      if (!merged.users.has(u.name)) {
        merged.users.set(u.name, {
          ...value,
          ...(value.tokenFile ? { tokenFile: abs(value.tokenFile)! } : {}),
          ...(value['client-certificate'] ? { 'client-certificate': abs(value['client-certificate'])! } : {}),
          ...(value['client-key'] ? { 'client-key': abs(value['client-key'])! } : {}),
        });
      }
    }
    for (const c of doc.contexts ?? []) {
      const value = (c as unknown as Record<string, ContextEntry>).context ?? {};
      if (!merged.contexts.has(c.name)) merged.contexts.set(c.name, value);
    }
  }
  if (merged.files.length === 0) throw new Error(`no kubeconfig file found (${files.join(', ')})`);
  return merged;
}

/** The pod's service account: the token is read again as the kubelet rotates it. */
function inCluster(env: Record<string, string | undefined>, saDir: string): KubeTarget {
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const caFile = join(saDir, 'ca.crt');
  const endpoint = endpointFor(
    { server, ...(existsSync(caFile) ? { 'certificate-authority': caFile } : {}) },
    { tokenFile: join(saDir, 'token') },
    env,
  );
  return { ...endpoint, context: 'in-cluster', contexts: [] };
}

const bytes = (file: string | undefined, data: string | undefined): Buffer | undefined =>
  data !== undefined ? Buffer.from(data, 'base64') : file !== undefined ? readFileSync(file) : undefined;

function endpointFor(
  cluster: ClusterEntry & { server: string },
  user: UserEntry,
  env: Record<string, string | undefined>,
): Endpoint {
  const tls: TlsAndHeaders = {};
  // Files are read at load time, as kubectl does; a token file is read again (rotation).
  const ca = bytes(cluster['certificate-authority'], cluster['certificate-authority-data']);
  if (ca) tls.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) tls.rejectUnauthorized = false;
  if (cluster['tls-server-name']) tls.servername = cluster['tls-server-name'];
  const cert = bytes(user['client-certificate'], user['client-certificate-data']);
  const key = bytes(user['client-key'], user['client-key-data']);
  if (cert) tls.cert = cert;
  if (key) tls.key = key;
  const fixed: Record<string, string> = {};
  if (user.as) fixed['Impersonate-User'] = user.as;
  if (user['as-groups']?.length) fixed['Impersonate-Group'] = user['as-groups'].join(',');
  if (user.username !== undefined && user.password !== undefined) {
    fixed.Authorization = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
  }
  let token: { value: string; until: number } | undefined;
  const exec = user.exec ? execCredentials(user.exec, cluster, env) : undefined;
  return {
    server: cluster.server,
    async requestOptions() {
      const headers = { ...fixed };
      if (user.token) headers.Authorization = `Bearer ${user.token}`;
      else if (user.tokenFile) {
        if (token === undefined || token.until < Date.now()) {
          token = { value: readFileSync(user.tokenFile, 'utf8').trim(), until: Date.now() + 60_000 };
        }
        headers.Authorization = `Bearer ${token.value}`;
      }
      if (exec) {
        const credential = await exec();
        if (credential.token) headers.Authorization = `Bearer ${credential.token}`;
        if (credential.cert && credential.key)
          return { ...tls, cert: credential.cert, key: credential.key, headers };
      }
      return { ...tls, headers };
    },
  };
}

interface ExecCredential {
  token?: string;
  cert?: string;
  key?: string;
  /** Milliseconds since the epoch; undefined: good until the process ends. */
  expires?: number;
}

/** A client-go credential plugin: run when there is no credential yet or it expired. */
function execCredentials(
  exec: ExecConfig,
  cluster: ClusterEntry & { server: string },
  env: Record<string, string | undefined>,
): () => Promise<ExecCredential> {
  const run = promisify(execFile);
  let cached: ExecCredential | undefined;
  let pending: Promise<ExecCredential> | undefined;
  const apiVersion = exec.apiVersion ?? 'client.authentication.k8s.io/v1';
  return async () => {
    if (cached && (cached.expires === undefined || cached.expires - 10_000 > Date.now())) return cached;
    pending ??= (async () => {
      const info = {
        apiVersion,
        kind: 'ExecCredential',
        spec: { interactive: false, cluster: { server: cluster.server } },
      };
      const { stdout } = await run(exec.command, exec.args ?? [], {
        env: {
          ...env,
          ...Object.fromEntries((exec.env ?? []).map((e) => [e.name, e.value])),
          KUBERNETES_EXEC_INFO: JSON.stringify(info),
        },
        maxBuffer: 1 << 20,
      });
      const status = (JSON.parse(stdout) as { status?: Record<string, string> }).status ?? {};
      const credential: ExecCredential = {
        ...(status.token ? { token: status.token } : {}),
        ...(status.clientCertificateData ? { cert: status.clientCertificateData } : {}),
        ...(status.clientKeyData ? { key: status.clientKeyData } : {}),
        ...(status.expirationTimestamp ? { expires: Date.parse(status.expirationTimestamp) } : {}),
      };
      if (!credential.token && !(credential.cert && credential.key)) {
        throw new MooringError(`the kubeconfig's exec plugin ${exec.command} returned no credential`);
      }
      return credential;
    })().finally(() => (pending = undefined));
    cached = await pending;
    return cached;
  };
}

/** auth-provider users and proxies: @kubernetes/client-node does those, loaded on first use. */
function viaClientNode(files: string[], context: string): Endpoint {
  let loaded: Promise<Endpoint> | undefined;
  const load = async (): Promise<Endpoint> => {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    kc.loadFromFile(files[0]!);
    kc.setCurrentContext(context);
    const server = kc.getCurrentCluster()!.server;
    return {
      server,
      async requestOptions() {
        const opts: Record<string, unknown> & { headers?: Record<string, string>; auth?: string } = {};
        await kc.applyToHTTPSOptions(opts);
        const headers = { ...opts.headers };
        if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
        const agent = await kc.applyToFetchOptions({}).then((o) => (o as { agent?: unknown }).agent);
        return {
          ...(opts.ca ? { ca: opts.ca as Buffer } : {}),
          ...(opts.cert ? { cert: opts.cert as Buffer } : {}),
          ...(opts.key ? { key: opts.key as Buffer } : {}),
          ...(opts.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
          ...(typeof opts.servername === 'string' ? { servername: opts.servername } : {}),
          headers,
          ...(agent ? { agent: agent as TlsAndHeaders['agent'] } : {}),
        };
      },
    };
  };
  const server = serverOf(files, context);
  return {
    server,
    async requestOptions() {
      loaded ??= load();
      return (await loaded).requestOptions();
    },
  };
}

function serverOf(files: string[], context: string): string {
  const merged = mergeFiles(files, true);
  const cluster = merged.clusters.get(merged.contexts.get(context)?.cluster ?? '');
  return cluster!.server!;
}
