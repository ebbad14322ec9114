// A real OCI registry for tests: the CNCF Distribution registry (built by setup into
// .tools/bin/registry), on 127.0.0.1 with htpasswd (bcrypt) auth and TLS from a throwaway CA,
// and charts pushed into it with `helm push`. A proxy in front of it counts requests, so
// tests can see what mooring asked the registry for.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { HELM, TOOLS_BIN } from './agent.js';
import { tinyChart } from './chart-repo.js';
import type { TestCertificates } from './git.js';

export const REGISTRY = join(TOOLS_BIN, 'registry');

/** The rig's registry user; the hash below is bcrypt (cost 6) of REGISTRY_PASSWORD. */
export const REGISTRY_USER = 'pusher';
export const REGISTRY_PASSWORD = 'registry-s3cret-91c2';
const REGISTRY_HTPASSWD = `${REGISTRY_USER}:$2b$06$dWLd6/997EavxBAXLS6yku8u3RwVdR0HPf9gvxDHn9xh44FdTs5du\n`;

export interface RegistryRequest {
  method: string;
  path: string;
  status: number;
}

export interface TestRegistry {
  /** `host:port` of the registry, as it goes after oci:// */
  host: string;
  requests: RegistryRequest[];
  /** Packages a chart and pushes it to oci://<host>/charts/<name>:<version>; returns the manifest digest. */
  push(name: string, version: string, files?: Record<string, string>): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startRegistry(certs: TestCertificates): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'mooring-registry-'));
  const port = await freePort();
  await writeFile(join(dir, 'htpasswd'), REGISTRY_HTPASSWD);
  await writeFile(join(dir, 'cert.pem'), certs.cert);
  await writeFile(join(dir, 'key.pem'), certs.key);
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: {level: error, accesslog: {disabled: true}}',
      `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}, delete: {enabled: true}}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      `  tls: {certificate: ${join(dir, 'cert.pem')}, key: ${join(dir, 'key.pem')}}`,
      'auth:',
      `  htpasswd: {realm: mooring-test, path: ${join(dir, 'htpasswd')}}`,
      '',
    ].join('\n'),
  );
  const child: ResultPromise = execa(REGISTRY, ['serve', join(dir, 'config.yml')], {
    reject: false,
    all: true,
    buffer: false,
  });
  let output = '';
  child.all?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));

  // A counting TLS proxy in front of the registry: what mooring asks for, one line each.
  const requests: RegistryRequest[] = [];
  const upstream = new https.Agent({ ca: certs.caPem, keepAlive: true });
  const proxy = https.createServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    const forward = https.request(
      { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent: upstream },
      (answer) => {
        requests.push({
          method: req.method ?? 'GET',
          path: new URL(req.url ?? '/', 'http://x').pathname,
          status: answer.statusCode ?? 0,
        });
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.writeHead(502).end());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;

  // Ready when /v2/ answers (401: it wants the password).
  const deadline = Date.now() + 20_000;
  for (;;) {
    const status = await new Promise<number>((resolve) => {
      https
        .get({ host: '127.0.0.1', port, path: '/v2/', agent: upstream }, (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        })
        .on('error', () => resolve(0));
    });
    if (status === 401) break;
    if (Date.now() > deadline) throw new Error(`the registry did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  const helmEnv = {
    HELM_REGISTRY_CONFIG: join(dir, 'helm-registry.json'),
    HELM_CACHE_HOME: join(dir, 'helm-cache'),
    HELM_CONFIG_HOME: join(dir, 'helm-config'),
  };
  await execa(
    HELM,
    ['registry', 'login', host, '--username', REGISTRY_USER, '--password-stdin', '--ca-file', certs.caFile],
    { input: REGISTRY_PASSWORD, env: helmEnv },
  );

  return {
    host,
    requests,
    async push(name, version, files = tinyChart(name, version)) {
      const src = await mkdtemp(join(dir, 'src-'));
      for (const [rel, content] of Object.entries(files)) {
        await mkdir(dirname(join(src, name, rel)), { recursive: true });
        await writeFile(join(src, name, rel), content);
      }
      await execa(HELM, ['package', join(src, name), '--destination', src], { env: helmEnv });
      const pushed = await execa(
        HELM,
        ['push', join(src, `${name}-${version}.tgz`), `oci://${host}/charts`, '--ca-file', certs.caFile],
        { env: helmEnv, all: true },
      );
      await rm(src, { recursive: true, force: true });
      const digest = /Digest: (sha256:[a-f0-9]{64})/.exec(pushed.all)?.[1];
      if (!digest) throw new Error(`helm push printed no digest: ${pushed.all}`);
      return digest;
    },
    async stop() {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      upstream.destroy();
      child.kill('SIGTERM');
      await child;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
