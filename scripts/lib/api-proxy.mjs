// @ts-check
// A counting proxy in front of the Kubernetes API server, for tests and benchmarks that
// count the requests a process makes (the agent, helm). It listens on 127.0.0.1 over plain
// HTTP, notes every request (method, path, user agent, status), and forwards it over TLS
// with the credentials of the kubeconfig it was given. Point a process at `kubeconfig` (a
// file written next to the proxy) and read `requests`.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';

/**
 * @typedef {object} ProxiedRequest
 * @property {string} method
 * @property {string} path         with its query string
 * @property {string} userAgent
 * @property {number} [status]     the API server's answer (absent while streaming)
 */

/**
 * @param {{ kubeconfig: string, dir: string, name?: string }} options
 *   `kubeconfig`: whose current context and credentials to forward with; `dir`: where the
 *   proxy's own kubeconfig is written.
 * @returns {Promise<{ kubeconfig: string, url: string, requests: ProxiedRequest[], stop(): Promise<void> }>}
 */
export async function startApiProxy({ kubeconfig, dir, name = 'api-proxy' }) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`${kubeconfig} has no current cluster`);
  const target = new URL(cluster.server);
  /** @type {import('node:https').RequestOptions} */
  const tls = {};
  await kc.applyToHTTPSOptions(tls);
  const agent = new Agent({ keepAlive: true, ca: tls.ca, cert: tls.cert, key: tls.key });
  const authorization = /** @type {Record<string, string>} */ (tls.headers ?? {}).Authorization;

  /** @type {ProxiedRequest[]} */
  const requests = [];
  const server = createServer((req, res) => {
    /** @type {ProxiedRequest} */
    const noted = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      userAgent: String(req.headers['user-agent'] ?? ''),
    };
    requests.push(noted);
    const headers = { ...req.headers, host: target.host };
    delete headers.authorization;
    if (authorization) headers.authorization = authorization;
    const upstream = request(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers,
        agent,
      },
      (answer) => {
        noted.status = answer.statusCode;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`api proxy: ${err.message}`);
    });
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  const url = `http://127.0.0.1:${address.port}`;
  const file = join(dir, `${name}.kubeconfig`);
  // JSON is YAML: every kubeconfig reader takes it.
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      // client-node takes plain http only with TLS checks off; there is no TLS to check.
      clusters: [{ name, cluster: { server: url, 'insecure-skip-tls-verify': true } }],
      users: [{ name, user: {} }],
      contexts: [{ name, context: { cluster: name, user: name } }],
      'current-context': name,
    }),
    { mode: 0o600 },
  );
  return {
    kubeconfig: file,
    url,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
      agent.destroy();
    },
  };
}
