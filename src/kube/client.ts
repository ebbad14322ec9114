// Connecting to Kubernetes: loads the kubeconfig (in-cluster, KUBECONFIG or a given file and
// context), builds the typed API clients mooring uses, asks the API server who we are, and
// applies objects server-side. Everything else in mooring receives these clients as
// parameters; nothing here keeps module-level state.
import { existsSync } from 'node:fs';
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https';
import {
  ApiException,
  ApiextensionsV1Api,
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  HttpMethod,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { MooringError } from '../errors.js';
import { KubeApiError, RestClient, type Endpoint, type TlsAndHeaders } from './rest.js';

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
  /** Generic client for any kind, used for server-side apply. */
  objects: RawObjectApi;
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

// Marks requests whose response must stay raw JSON (see RawObjectApi.processResponse).
const RAW = '__mooring_raw__';
const METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';

/** An object's metadata as a metadata-only list returns it. */
export interface ObjectMetadataItem {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  resourceVersion?: string;
  creationTimestamp?: string;
}

/**
 * KubernetesObjectApi sends objects of kinds it knows through its typed models, which drops
 * fields the models lack (`x-kubernetes-*` in CRD schemas, fields newer than the client) and
 * turns timestamps into Dates. Applying a chart's manifests must send and return exactly the
 * JSON we hold, so this keeps its path discovery and sends raw JSON both ways.
 */
export class RawObjectApi extends KubernetesObjectApi {
  static fromKubeConfig(kc: KubeConfig): RawObjectApi {
    const api = kc.makeApiClient(RawObjectApi);
    api.setDefaultNamespace(kc);
    return api;
  }

  /** PATCH application/apply-patch+yaml with the object as given; returns the server's JSON. */
  async applyRaw(
    object: AnyObject,
    params: { fieldManager: string; force: boolean; dryRun: boolean },
  ): Promise<AnyObject> {
    const path = await this.specUriPath(object, 'patch');
    const request = this.configuration.baseServer.makeRequestContext(path, HttpMethod.PATCH);
    request.setHeaderParam('Accept', 'application/json');
    request.setHeaderParam('Content-Type', PatchStrategy.ServerSideApply);
    request.setQueryParam('fieldManager', params.fieldManager);
    if (params.force) request.setQueryParam('force', 'true');
    if (params.dryRun) request.setQueryParam('dryRun', 'All');
    // JSON is YAML, so the apply-patch+yaml content type accepts it unchanged.
    request.setBody(JSON.stringify(object));
    return this.requestPromise<AnyObject>(request, RAW);
  }

  /** GET of one object as the server's JSON; undefined when it (or its namespace) does not exist. */
  async readRaw(object: KubernetesObject): Promise<AnyObject | undefined> {
    // specUriPath fills in defaults on the object it is given; keep the caller's intact.
    const path = await this.specUriPath(structuredClone(object), 'read');
    const request = this.configuration.baseServer.makeRequestContext(path, HttpMethod.GET);
    request.setHeaderParam('Accept', 'application/json');
    try {
      return await this.requestPromise<AnyObject>(request, RAW);
    } catch (err) {
      if (apiStatusCode(err) === 404) return undefined;
      throw err;
    }
  }

  /** Whether the API server serves `kind` as a namespaced resource; undefined when it does not serve it. */
  async isNamespaced(apiVersion: string, kind: string): Promise<boolean | undefined> {
    try {
      return (await this.resource(apiVersion, kind))?.namespaced;
    } catch (err) {
      if (apiStatusCode(err) === 404) return undefined;
      throw err;
    }
  }

  /**
   * One page of a list of any kind, as the server's JSON (items carry no apiVersion/kind).
   * Without `namespace`, a namespaced kind is listed across all namespaces.
   */
  async listRaw(
    apiVersion: string,
    kind: string,
    options: { namespace?: string; labelSelector?: string; limit?: number; continueToken?: string } = {},
  ): Promise<{ items: AnyObject[]; continueToken?: string }> {
    const spec = { apiVersion, kind, metadata: options.namespace ? { namespace: options.namespace } : {} };
    const path = await this.specUriPath(spec, 'list');
    const request = this.configuration.baseServer.makeRequestContext(path, HttpMethod.GET);
    request.setHeaderParam('Accept', 'application/json');
    if (options.labelSelector) request.setQueryParam('labelSelector', options.labelSelector);
    if (options.limit) request.setQueryParam('limit', String(options.limit));
    if (options.continueToken) request.setQueryParam('continue', options.continueToken);
    const list = (await this.requestPromise<AnyObject>(request, RAW)) as AnyObject & {
      metadata?: { continue?: string };
    };
    const items = Array.isArray(list.items) ? (list.items as AnyObject[]) : [];
    const next = list.metadata?.continue;
    return { items, ...(next ? { continueToken: next } : {}) };
  }

  /**
   * The metadata (name, namespace, labels, ...) of every object of a core/v1 resource
   * (`secrets`, `configmaps`) matching `labelSelector`, in `namespace` or across all of them.
   * The API server sends metadata only (PartialObjectMetadataList), so listing helm's
   * storage Secrets does not transfer the releases they hold; pages of 500.
   */
  async listMetadata(
    resource: string,
    options: { namespace?: string; labelSelector?: string } = {},
  ): Promise<ObjectMetadataItem[]> {
    const path =
      options.namespace === undefined
        ? `/api/v1/${resource}`
        : `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/${resource}`;
    const items: ObjectMetadataItem[] = [];
    let continueToken: string | undefined;
    do {
      const request = this.configuration.baseServer.makeRequestContext(path, HttpMethod.GET);
      // A server that cannot answer in metadata form sends the full list, which has the same shape.
      request.setHeaderParam('Accept', `${METADATA_LIST},application/json`);
      if (options.labelSelector) request.setQueryParam('labelSelector', options.labelSelector);
      request.setQueryParam('limit', '500');
      if (continueToken) request.setQueryParam('continue', continueToken);
      const list = (await this.requestPromise<AnyObject>(request, RAW)) as AnyObject & {
        items?: Array<{ metadata?: ObjectMetadataItem }>;
        metadata?: { continue?: string };
      };
      for (const item of list.items ?? []) if (item.metadata) items.push(item.metadata);
      continueToken = list.metadata?.continue || undefined;
    } while (continueToken);
    return items;
  }

  /** PATCH application/json-patch+json (RFC 6902) of one object; returns the server's JSON. */
  async jsonPatchRaw(
    object: KubernetesObject,
    patch: readonly JsonPatchOperation[],
    params: { fieldManager: string; dryRun?: boolean },
  ): Promise<AnyObject> {
    const path = await this.specUriPath(structuredClone(object), 'patch');
    const request = this.configuration.baseServer.makeRequestContext(path, HttpMethod.PATCH);
    request.setHeaderParam('Accept', 'application/json');
    request.setHeaderParam('Content-Type', PatchStrategy.JsonPatch);
    request.setQueryParam('fieldManager', params.fieldManager);
    if (params.dryRun) request.setQueryParam('dryRun', 'All');
    request.setBody(JSON.stringify(patch));
    return this.requestPromise<AnyObject>(request, RAW);
  }

  protected override async processResponse<T extends KubernetesObject>(
    response: ResponseContext,
    type?: string,
  ): Promise<T> {
    if (type !== RAW) return super.processResponse<T>(response, type);
    const text = await response.body.text();
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) return JSON.parse(text) as T;
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // keep the text
    }
    throw new ApiException(response.httpStatusCode, 'Unsuccessful HTTP Request', body, response.headers);
  }
}

export function createKubeClients(kubeConfig: KubeConfig): KubeClients {
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    coordination: kubeConfig.makeApiClient(CoordinationV1Api),
    customObjects: kubeConfig.makeApiClient(CustomObjectsApi),
    apiExtensions: kubeConfig.makeApiClient(ApiextensionsV1Api),
    events: kubeConfig.makeApiClient(EventsV1Api),
    authentication: kubeConfig.makeApiClient(AuthenticationV1Api),
    objects: RawObjectApi.fromKubeConfig(kubeConfig),
    rest: new RestClient(endpointOf(kubeConfig)),
  };
}

/** Who the API server says we are. */
export interface Identity {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** Asks the API server who the caller is (SelfSubjectReview, authentication.k8s.io/v1). */
export async function whoAmI(clients: Pick<KubeClients, 'authentication'>): Promise<Identity> {
  const review = await clients.authentication.createSelfSubjectReview({
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  const user = review.status?.userInfo;
  if (user?.username === undefined || user.username === '') {
    throw new MooringError('the API server did not say who we are (empty SelfSubjectReview)');
  }
  return {
    username: user.username,
    ...(user.uid === undefined || user.uid === '' ? {} : { uid: user.uid }),
    groups: user.groups ?? [],
    ...(user.extra === undefined ? {} : { extra: user.extra }),
  };
}

export interface ApplyOptions {
  /** Owner of the applied fields, e.g. `mooring` or `mooring-drift`. */
  fieldManager: string;
  /** Take fields owned by other managers (what `kubectl apply --server-side --force-conflicts` does). */
  force?: boolean;
  /** Ask the API server what would happen, changing nothing. */
  dryRun?: boolean;
}

/**
 * Server-side apply of one object of any kind (PATCH application/apply-patch+yaml), sent and
 * returned as plain JSON; returns the object the server holds (or would hold, with dryRun).
 */
export async function serverSideApply(
  clients: Pick<KubeClients, 'objects'>,
  object: AnyObject,
  options: ApplyOptions,
): Promise<AnyObject> {
  return clients.objects.applyRaw(object, {
    fieldManager: options.fieldManager,
    force: options.force ?? false,
    dryRun: options.dryRun ?? false,
  });
}

/** A Kubernetes object of any kind, as plain JSON. */
export type AnyObject = KubernetesObject & { [field: string]: unknown };

/** One operation of a JSON patch (RFC 6902). */
export type JsonPatchOperation =
  { op: 'add' | 'replace' | 'test'; path: string; value: unknown } | { op: 'remove'; path: string };

/** Identifies a namespaced custom resource. */
export interface CustomResourceRef {
  group: string;
  version: string;
  plural: string;
  namespace: string;
  name: string;
}

/** Server-side apply of the status subresource of a namespaced custom resource. */
export async function applyCustomStatus(
  clients: Pick<KubeClients, 'customObjects'>,
  ref: CustomResourceRef,
  body: { apiVersion: string; kind: string; metadata: { name: string; namespace: string }; status: unknown },
  options: ApplyOptions,
): Promise<KubernetesObject> {
  return (await clients.customObjects.patchNamespacedCustomObjectStatus(
    {
      ...ref,
      body,
      fieldManager: options.fieldManager,
      force: options.force ?? false,
      ...(options.dryRun === true ? { dryRun: 'All' } : {}),
    },
    setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
  )) as KubernetesObject;
}

/** The HTTP status of a failed API call, if it was one. */
export function apiStatusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number')
    return err.code;
  return undefined;
}

export const isNotFound = (err: unknown): boolean => apiStatusCode(err) === 404;
export const isConflict = (err: unknown): boolean => apiStatusCode(err) === 409;
export const isForbidden = (err: unknown): boolean => apiStatusCode(err) === 403;
export const isAlreadyExists = (err: unknown): boolean => apiStatusCode(err) === 409;

/** A readable message for an API error: the API server's own `message`, not the raw HTTP body. */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof KubeApiError) {
    const body = err.body;
    return typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string'
      ? `${body.message} (HTTP ${err.code})`
      : `HTTP ${err.code}`;
  }
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    let parsed: unknown = body;
    if (typeof body === 'string') {
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
    }
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      'message' in parsed &&
      typeof parsed.message === 'string'
    ) {
      return `${parsed.message} (HTTP ${err.code})`;
    }
    return `HTTP ${err.code}`;
  }
  return messageOf(err);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
