// The connection to one cluster that mooring's modules share: the REST client for requests
// and watches by path, and the object API for any kind by apiVersion and kind.
import { loadKubeTarget, type KubeConfigOptions } from './kubeconfig.js';
import { ObjectApi } from './objects.js';
import { RestClient } from './rest.js';

export interface Kube {
  rest: RestClient;
  objects: ObjectApi;
}

/** Connects to the cluster the options name (see loadKubeTarget); `context` is the context's name. */
export function connect(options: KubeConfigOptions = {}): Kube & { context: string; contexts: string[] } {
  const target = loadKubeTarget(options);
  const rest = new RestClient(target);
  return { rest, objects: new ObjectApi(rest), context: target.context, contexts: target.contexts };
}
