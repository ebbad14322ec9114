// Objects of any kind as plain JSON, over src/kube/rest.ts: where a kind lives (discovery,
// asked once per group version), read, list, server-side apply and JSON patch. Applying a
// chart's manifests and comparing them for drift must send and see exactly the JSON the
// server holds: no typed models to drop fields they do not know or turn times into Dates.
import { MooringError } from '../errors.js';
import { isNotFound } from './errors.js';
import { PATCH, type RestClient } from './rest.js';

/** apiVersion, kind, name and (for namespaced kinds) namespace of one object. */
export interface ObjectRef {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
}

/** metadata as the server sends it (times are RFC 3339 strings). */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  finalizers?: string[];
  managedFields?: {
    manager?: string;
    operation?: string;
    apiVersion?: string;
    time?: string;
    fieldsType?: string;
    fieldsV1?: object;
    subresource?: string;
  }[];
}

/** A Kubernetes object of any kind, as plain JSON. */
export type AnyObject = { apiVersion?: string; kind?: string; metadata?: ObjectMeta } & {
  [field: string]: unknown;
};

/** One operation of a JSON patch (RFC 6902). */
export type JsonPatchOperation =
  { op: 'add' | 'replace' | 'test'; path: string; value: unknown } | { op: 'remove'; path: string };

/** An object's metadata as a metadata-only list returns it. */
export interface ObjectMetadataItem {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  resourceVersion?: string;
  creationTimestamp?: string;
}

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

const METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';

/** The API paths of one kind's objects. */
export class ObjectApi {
  readonly rest: RestClient;
  /** What the server serves, per group version. */
  private readonly discovered = new Map<string, ApiResource[]>();
  /** The namespace of an object that names none (the kubeconfig context's, or default). */
  private readonly defaultNamespace: string;

  constructor(rest: RestClient, defaultNamespace = 'default') {
    this.rest = rest;
    this.defaultNamespace = defaultNamespace;
  }

  /**
   * The resource serving `kind` in `apiVersion`, undefined when the group version has no
   * such kind; a group version the server does not serve is a 404. A kind missing from the
   * cached answer is asked for again: a CRD may have been installed since.
   */
  async resource(apiVersion: string, kind: string): Promise<ApiResource | undefined> {
    const cached = this.discovered.get(apiVersion)?.find((r) => r.kind === kind);
    if (cached !== undefined) return cached;
    const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const list = await this.rest.request<{ resources?: ApiResource[] }>('GET', path);
    const resources = (list.resources ?? []).filter((r) => !r.name.includes('/'));
    this.discovered.set(apiVersion, resources);
    return resources.find((r) => r.kind === kind);
  }

  /** Whether the API server serves `kind` as a namespaced resource; undefined when it does not serve it. */
  async isNamespaced(apiVersion: string, kind: string): Promise<boolean | undefined> {
    return (await this.resourceOrUndefined(apiVersion, kind))?.namespaced;
  }

  private async resourceOrUndefined(apiVersion: string, kind: string): Promise<ApiResource | undefined> {
    try {
      return await this.resource(apiVersion, kind);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The path of one object (with a name) or of its collection (without). */
  async pathOf(object: ObjectRef, options: { collection?: boolean } = {}): Promise<string> {
    const apiVersion = object.apiVersion ?? '';
    const kind = object.kind ?? '';
    const resource = await this.resource(apiVersion, kind);
    if (resource === undefined) {
      throw Object.assign(new Error(`the server does not serve ${kind} in ${apiVersion}`), { code: 404 });
    }
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const namespace = object.metadata?.namespace ?? this.defaultNamespace;
    const scope = resource.namespaced ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    const name = object.metadata?.name;
    return options.collection || name === undefined
      ? `${base}${scope}/${resource.name}`
      : `${base}${scope}/${resource.name}/${encodeURIComponent(name)}`;
  }

  /** PATCH application/apply-patch+yaml with the object as given; returns the server's JSON. */
  async applyRaw(
    object: AnyObject,
    params: { fieldManager: string; force: boolean; dryRun: boolean },
  ): Promise<AnyObject> {
    return this.rest.request<AnyObject>('PATCH', await this.pathOf(object), {
      // JSON is YAML, so the apply-patch+yaml content type accepts it unchanged.
      body: object,
      contentType: PATCH.apply,
      query: {
        fieldManager: params.fieldManager,
        ...(params.force ? { force: true } : {}),
        ...(params.dryRun ? { dryRun: 'All' } : {}),
      },
    });
  }

  /** GET of one object as the server's JSON; undefined when it (or its namespace, or its kind) does not exist. */
  async readRaw(object: ObjectRef): Promise<AnyObject | undefined> {
    try {
      return await this.rest.getOptional<AnyObject>(await this.pathOf(object));
    } catch (err) {
      if (isNotFound(err)) return undefined;
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
    const resource = await this.resource(apiVersion, kind);
    if (resource === undefined) {
      throw Object.assign(new Error(`the server does not serve ${kind} in ${apiVersion}`), { code: 404 });
    }
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const scope =
      resource.namespaced && options.namespace ? `/namespaces/${encodeURIComponent(options.namespace)}` : '';
    const list = await this.rest.request<{ items?: AnyObject[]; metadata?: { continue?: string } }>(
      'GET',
      `${base}${scope}/${resource.name}`,
      {
        query: {
          labelSelector: options.labelSelector || undefined,
          limit: options.limit || undefined,
          continue: options.continueToken || undefined,
        },
      },
    );
    const next = list.metadata?.continue;
    return { items: list.items ?? [], ...(next ? { continueToken: next } : {}) };
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
      const list = await this.rest.request<{
        items?: Array<{ metadata?: ObjectMetadataItem }>;
        metadata?: { continue?: string };
      }>('GET', path, {
        // A server that cannot answer in metadata form sends the full list, which has the same shape.
        accept: `${METADATA_LIST},application/json`,
        query: { labelSelector: options.labelSelector || undefined, limit: 500, continue: continueToken },
      });
      for (const item of list.items ?? []) if (item.metadata) items.push(item.metadata);
      continueToken = list.metadata?.continue || undefined;
    } while (continueToken);
    return items;
  }

  /** PATCH application/json-patch+json (RFC 6902) of one object; returns the server's JSON. */
  async jsonPatchRaw(
    object: ObjectRef,
    patch: readonly JsonPatchOperation[],
    params: { fieldManager: string; dryRun?: boolean },
  ): Promise<AnyObject> {
    return this.rest.request<AnyObject>('PATCH', await this.pathOf(object), {
      body: patch,
      contentType: PATCH.json,
      query: { fieldManager: params.fieldManager, ...(params.dryRun ? { dryRun: 'All' } : {}) },
    });
  }
}

/** Who the API server says we are. */
export interface Identity {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** Asks the API server who the caller is (SelfSubjectReview, authentication.k8s.io/v1). */
export async function whoAmI(clients: { rest: Pick<RestClient, 'request'> }): Promise<Identity> {
  const review = await clients.rest.request<{
    status?: {
      userInfo?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
    };
  }>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
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
  clients: { objects: Pick<ObjectApi, 'applyRaw'> },
  object: AnyObject,
  options: ApplyOptions,
): Promise<AnyObject> {
  return clients.objects.applyRaw(object, {
    fieldManager: options.fieldManager,
    force: options.force ?? false,
    dryRun: options.dryRun ?? false,
  });
}
