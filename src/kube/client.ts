// @kubernetes/client-node's typed clients, for tests and tools that set up and inspect a
// cluster. mooring itself does not load this module: it talks to the API server through
// src/kube/rest.ts (connect.ts), since importing client-node costs ~70 MiB of memory. The
// clients built here carry that same REST client and object API (`rest`, `objects`), so a
// test can hand them to any of mooring's modules.
import { existsSync } from 'node:fs';
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https';
import {
  ApiextensionsV1Api,
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  type RequestContext,
} from '@kubernetes/client-node';
import { MooringError } from '../errors.js';
import { ObjectApi } from './objects.js';
import { RestClient, type Endpoint, type TlsAndHeaders } from './rest.js';

export interface KubeConfigOptions {
  /** A kubeconfig file to use instead of KUBECONFIG / in-cluster discovery. */
  kubeconfig?: string;
  /** A context name (`--context`); defaults to the kubeconfig's current context. */
  context?: string;
  env?: Record<string, string | undefined>;
  /** Where a pod finds its service account token (tests point it elsewhere). */
  serviceAccountTokenPath?: string;
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Loads the kubeconfig the way the agent is documented to: an explicit file first, then
 * KUBECONFIG, then the pod's service account when running in a cluster, then ~/.kube/config.
 */
export function loadKubeConfig(options: KubeConfigOptions = {}): KubeConfig {
  const env = options.env ?? process.env;
  const kc = new PooledKubeConfig();
  const tokenPath = options.serviceAccountTokenPath ?? SERVICE_ACCOUNT_TOKEN;
  try {
    if (options.kubeconfig !== undefined) {
      kc.loadFromFile(options.kubeconfig);
    } else if (
      (env.KUBECONFIG ?? '') === '' &&
      env.KUBERNETES_SERVICE_HOST !== undefined &&
      existsSync(tokenPath)
    ) {
      kc.loadFromCluster();
    } else {
      // Reads KUBECONFIG (a list of files, merged) or ~/.kube/config.
      kc.loadFromDefault();
    }
  } catch (err) {
    throw new MooringError(
      `cannot load the kubeconfig${options.kubeconfig === undefined ? '' : ` ${options.kubeconfig}`}: ${messageOf(err)}`,
      options.kubeconfig === undefined ? {} : { file: options.kubeconfig },
      { cause: err },
    );
  }
  if (options.context !== undefined) {
    if (kc.getContextObject(options.context) === null) {
      const known = kc.getContexts().map((c) => c.name);
      throw new MooringError(
        `kubeconfig has no context named ${options.context}`,
        {},
        {
          hint:
            known.length === 0 ? 'the kubeconfig defines no contexts' : `known contexts: ${known.join(', ')}`,
        },
      );
    }
    kc.setCurrentContext(options.context);
  }
  if (kc.getCurrentCluster() === null) {
    throw new MooringError(
      'no Kubernetes cluster configured',
      {},
      {
        hint: 'run inside a cluster, set KUBECONFIG, or pass --context',
      },
    );
  }
  return kc;
}

/**
 * The client library makes a new HTTPS agent, so a new TLS connection, for every request. A
 * drift check makes one request per object; reusing connections halves its time and cuts its
 * CPU by four (bench/drift.mjs). One keep-alive agent per set of TLS options (a rotated
 * client certificate gets a new one); idle sockets do not keep the process alive.
 */
class PooledKubeConfig extends KubeConfig {
  private pooled?: { options: HttpsAgentOptions; agent: HttpsAgent };

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    // Proxy agents and plain HTTP are left as the library made them.
    if (fresh?.constructor !== HttpsAgent) return;
    const options = (fresh as HttpsAgent & { options: HttpsAgentOptions }).options;
    if (this.pooled === undefined || !sameTls(this.pooled.options, options)) {
      this.pooled?.agent.destroy();
      this.pooled = { options, agent: new HttpsAgent({ ...options, keepAlive: true, maxSockets: 32 }) };
    }
    context.setAgent(this.pooled.agent);
  }
}

function sameTls(a: HttpsAgentOptions, b: HttpsAgentOptions): boolean {
  const same = (x: unknown, y: unknown): boolean =>
    x === y || (Buffer.isBuffer(x) && Buffer.isBuffer(y) && x.equals(y));
  return (
    same(a.ca, b.ca) &&
    same(a.cert, b.cert) &&
    same(a.key, b.key) &&
    same(a.pfx, b.pfx) &&
    same(a.passphrase, b.passphrase) &&
    a.rejectUnauthorized === b.rejectUnauthorized
  );
}

/** The API clients mooring uses, all built from one kubeconfig. */
export interface KubeClients {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  customObjects: CustomObjectsApi;
  apiExtensions: ApiextensionsV1Api;
  events: EventsV1Api;
  authentication: AuthenticationV1Api;
  /** Any kind as plain JSON, used for server-side apply (src/kube/objects.ts). */
  objects: ObjectApi;
  /** Plain JSON requests and watches by path (src/kube/rest.ts). */
  rest: RestClient;
}

/** The kubeconfig's current cluster and credentials, as the REST client takes them. */
export function endpointOf(kc: KubeConfig): Endpoint {
  const server = kc.getCurrentCluster()?.server;
  if (server === undefined) throw new MooringError('no Kubernetes cluster configured');
  return {
    server,
    async requestOptions(): Promise<TlsAndHeaders> {
      const opts: HttpsAgentOptions & { headers?: Record<string, string>; auth?: string } = {};
      await kc.applyToHTTPSOptions(opts);
      const headers = { ...opts.headers };
      if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
      return {
        ...(opts.ca === undefined ? {} : { ca: opts.ca as string | Buffer }),
        ...(opts.cert === undefined ? {} : { cert: opts.cert as string | Buffer }),
        ...(opts.key === undefined ? {} : { key: opts.key as string | Buffer }),
        ...(opts.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: opts.rejectUnauthorized }),
        ...(opts.servername === undefined ? {} : { servername: opts.servername }),
        headers,
      };
    },
  };
}

export function createKubeClients(kubeConfig: KubeConfig): KubeClients {
  const rest = new RestClient(endpointOf(kubeConfig));
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    coordination: kubeConfig.makeApiClient(CoordinationV1Api),
    customObjects: kubeConfig.makeApiClient(CustomObjectsApi),
    apiExtensions: kubeConfig.makeApiClient(ApiextensionsV1Api),
    events: kubeConfig.makeApiClient(EventsV1Api),
    authentication: kubeConfig.makeApiClient(AuthenticationV1Api),
    rest,
    objects: new ObjectApi(rest, kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace),
  };
}

export {
  serverSideApply,
  whoAmI,
  type AnyObject,
  type ApplyOptions,
  type Identity,
  type JsonPatchOperation,
  type ObjectMetadataItem,
} from './objects.js';

export {
  apiErrorMessage,
  apiStatusCode,
  isAlreadyExists,
  isConflict,
  isForbidden,
  isNotFound,
} from './errors.js';

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
