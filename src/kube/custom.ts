// One kind of custom resource in one namespace (or across all), over src/kube/rest.ts: the
// handful of verbs mooring's stores use, by name, with plain JSON in and out.
import { PATCH, type Query, type RestClient } from './rest.js';

export interface CustomResources {
  /** The collection's path, e.g. /apis/mooring.io/v1alpha1/namespaces/ns/mooringplans. */
  readonly path: string;
  get<T>(name: string): Promise<T>;
  list<T>(query?: Query): Promise<{ items?: T[] }>;
  create<T>(body: unknown): Promise<T>;
  /** PUT of the status subresource: a compare-and-swap on the body's resourceVersion. */
  replaceStatus<T>(name: string, body: unknown): Promise<T>;
  /** PATCH of the object (or its status), a merge patch unless told otherwise. */
  patch<T>(name: string, body: unknown, options?: { status?: boolean; contentType?: string }): Promise<T>;
  delete(name: string): Promise<void>;
}

export function customResources(
  client: Pick<RestClient, 'request'>,
  ref: { group: string; version: string; plural: string; namespace?: string },
): CustomResources {
  const scope = ref.namespace === undefined ? '' : `/namespaces/${encodeURIComponent(ref.namespace)}`;
  const path = `/apis/${ref.group}/${ref.version}${scope}/${ref.plural}`;
  const one = (name: string) => `${path}/${encodeURIComponent(name)}`;
  return {
    path,
    get: (name) => client.request('GET', one(name)),
    list: (query) => client.request('GET', path, query ? { query } : {}),
    create: (body) => client.request('POST', path, { body }),
    replaceStatus: (name, body) => client.request('PUT', `${one(name)}/status`, { body }),
    patch: (name, body, options = {}) =>
      client.request('PATCH', options.status ? `${one(name)}/status` : one(name), {
        body,
        contentType: options.contentType ?? PATCH.merge,
      }),
    delete: async (name) => {
      await client.request('DELETE', one(name));
    },
  };
}
