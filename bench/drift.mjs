#!/usr/bin/env node
// What a drift check costs: 100 releases of 5 objects each (Deployment, Service, ConfigMap,
// Secret, ServiceAccount), half recorded as helm 4 server-side applies and half as client-side
// ones, each release in its own namespace. Measures a check of the clean cluster (the steady
// state, every --drift-interval), then a check in warn mode and one in correct mode after
// 40 objects were changed by hand. Prints wall time, API requests (every HTTP request the
// process sends, by verb and resource), CPU time and the process's peak memory; asserts
// nothing.
//
// Setting up 100 releases with the helm binary would take minutes, so the bench writes what
// helm writes: the release record Secret (sh.helm.release.v1.<name>.v1, gzip+base64 JSON) and
// the objects with helm's field manager (server-side apply, or create for client-side). The
// drift check cannot tell the difference. Runs against the control plane in $KUBECONFIG when
// MOORING_BENCH_KUBECONFIG is set, else starts its own. Needs the compiled agent (npm run build).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { subscribe } from 'node:diagnostics_channel';

const dist = process.env.MOORING_DIST ?? new URL('../dist', import.meta.url).pathname;
const load = async (path) => import(pathToFileURL(join(dist, path)).href);
const { createKubeClients, loadKubeConfig, serverSideApply } = await load('kube/client.js');
const { encodeRelease } = await load('converge/helm-storage.js');
const { createDriftChecker } = await load('observe/drift/index.js');
const { startControlPlane, stopControlPlane } = await import(
  new URL('../scripts/lib/controlplane.mjs', import.meta.url).href
);

const RELEASES = Number(process.env.RELEASES ?? 100);
const RUN = Date.now().toString(36);

let ownPlane;
let kubeconfig = process.env.MOORING_BENCH_KUBECONFIG;
if (!kubeconfig) {
  const dir = mkdtempSync(join(tmpdir(), 'mooring-bench-drift-'));
  ownPlane = await startControlPlane({ dir, exitWithPid: process.pid });
  kubeconfig = ownPlane.kubeconfig;
}
const clients = createKubeClients(loadKubeConfig({ kubeconfig }));
/** A merge patch as `kubectl edit` or `kubectl scale` sends it, under their field manager. */
const mergePatch = async (/** @type {any} */ object, /** @type {string} */ fieldManager) =>
  clients.rest.request('PATCH', await clients.objects.pathOf(object), {
    body: object,
    contentType: 'application/merge-patch+json',
    query: { fieldManager },
  });

function manifestFor(name, namespace) {
  const labels = { app: name };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, labels } },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `${name}-config`, labels },
      data: { greeting: 'hello', level: 'info' },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-db`, labels },
      stringData: { password: `pw-${name}` },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, labels },
      spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, labels },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: name,
            containers: [
              {
                name: 'web',
                image: 'registry.example/web:1.0.0',
                ports: [{ containerPort: 8080 }],
                env: [{ name: 'NAMESPACE', value: namespace }],
                resources: { requests: { cpu: 0.25, memory: '64Mi' } },
              },
            ],
          },
        },
      },
    },
  ];
}

const toYaml = (objects) => objects.map((o) => JSON.stringify(o)).join('\n---\n');

/** Writes one release the way helm does: its objects, then its storage record. */
async function installRelease(i) {
  const name = `web${i}`;
  const namespace = `bench-drift-${RUN}-${i}`;
  const ssa = i % 2 === 0;
  await clients.core.createNamespace({ body: { metadata: { name: namespace } } });
  const objects = manifestFor(name, namespace);
  for (const object of objects) {
    const applied = structuredClone(object);
    applied.metadata.namespace = namespace;
    applied.metadata.labels = { ...applied.metadata.labels, 'app.kubernetes.io/managed-by': 'Helm' };
    applied.metadata.annotations = {
      'meta.helm.sh/release-name': name,
      'meta.helm.sh/release-namespace': namespace,
    };
    if (ssa) await serverSideApply(clients, applied, { fieldManager: 'helm', force: true });
    else
      await clients.rest.request('POST', await clients.objects.pathOf(applied, { collection: true }), {
        body: applied,
        query: { fieldManager: 'helm' },
      });
  }
  const record = {
    name,
    namespace,
    version: 1,
    info: { status: 'deployed', description: 'Install complete' },
    manifest: toYaml(objects),
    config: { password: `pw-${name}` },
    apply_method: ssa ? 'ssa' : 'csa',
  };
  await clients.core.createNamespacedSecret({
    namespace,
    body: {
      metadata: {
        name: `sh.helm.release.v1.${name}.v1`,
        labels: { owner: 'helm', name, status: 'deployed', version: '1' },
      },
      type: 'helm.sh/release.v1',
      data: { release: encodeRelease(record) },
    },
  });
  return { name, namespace };
}

async function pool(items, limit, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

/**
 * Every HTTP request this process sends, by verb and resource, seen through Node's own
 * diagnostics channel: exact, and blind to the API server's other clients (the namespace
 * controller deleting an earlier run's namespaces, other tests).
 */
const sent = [];
subscribe('http.client.request.start', ({ request }) =>
  sent.push(`${request.method} ${request.path} ${request.getHeader('content-type') ?? ''}`),
);

function describeRequest(line) {
  const [method, path, contentType] = line.split(' ');
  const [pathname, query = ''] = path.split('?');
  const parts = pathname.split('/').filter(Boolean);
  let rest = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  const verb =
    method === 'GET'
      ? rest.length >= 2
        ? 'GET'
        : 'LIST'
      : method === 'PATCH' && contentType.includes('apply-patch')
        ? 'APPLY'
        : method;
  const resource = rest[0] ?? `discovery ${pathname}`;
  return `${verb} ${resource}${query.includes('dryRun=All') ? ' (dry run)' : ''}`;
}

function countRequests(lines) {
  const byKind = {};
  for (const line of lines) {
    const key = describeRequest(line);
    byKind[key] = (byKind[key] ?? 0) + 1;
  }
  return { total: lines.length, byKind };
}

/** CPU seconds the control plane we started has used (NaN for someone else's). */
function serverCpuSeconds() {
  if (!ownPlane) return NaN;
  try {
    const fields = readFileSync(`/proc/${ownPlane.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

function planOf(releases, mode) {
  return {
    cluster: { name: 'bench', environment: 'bench' },
    disabled: [],
    releases: releases.map((r) => ({
      name: r.name,
      namespace: r.namespace,
      chart: './charts/web',
      dependsOn: [],
      resolved: {
        release: { name: r.name, namespace: r.namespace, drift: { mode, ignore: [] } },
        secretStrings: [],
      },
    })),
  };
}

// One checker for the whole run, as the agent keeps one: the mode of each check comes from
// the releases (drift.mode), as releases.yaml would set it. Status and Events are the
// agent's bookkeeping, the same for any way of finding drift: left out here.
const drift = createDriftChecker({
  objects: clients.objects,
  kube: clients.rest,
  status: { list: async () => [], update: async () => undefined },
  events: { emit: () => undefined },
  mode: 'correct',
});

async function measure(label, releases, mode) {
  if (global.gc) global.gc();
  const baseHeap = process.memoryUsage().heapUsed;
  let peakHeap = baseHeap;
  let peakRss = process.memoryUsage().rss;
  // memoryUsage() itself costs CPU; 25 ms is fine enough to see the peak of a seconds-long check.
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakRss = Math.max(peakRss, m.rss);
  }, 25);
  const before = sent.length;
  const serverCpu0 = serverCpuSeconds();
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const result = await drift.check({ plan: planOf(releases, mode) });
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const serverCpu = serverCpuSeconds() - serverCpu0;
  clearInterval(sampler);
  const requests = countRequests(sent.slice(before));
  const objects = releases.length * 5;
  console.log(`\n${label}`);
  console.log(`  result            ${JSON.stringify(result)}`);
  console.log(
    `  wall time         ${seconds.toFixed(2)} s (load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores)`,
  );
  console.log(
    `  CPU               ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s agent` +
      (Number.isNaN(serverCpu) ? '' : `, ${serverCpu.toFixed(2)} s control plane (etcd + API server)`),
  );
  console.log(
    `  API requests      ${requests.total} for ${objects} objects (${(requests.total / objects).toFixed(2)} per object)`,
  );
  for (const [key, n] of Object.entries(requests.byKind).sort((a, b) => b[1] - a[1]))
    console.log(`      ${String(n).padStart(5)}  ${key}`);
  console.log(
    `  heap growth peak  ${((peakHeap - baseHeap) / 1e6).toFixed(1)} MB (heap ${(peakHeap / 1e6).toFixed(1)} MB, RSS ${(peakRss / 1e6).toFixed(1)} MB)`,
  );
}

try {
  const started = performance.now();
  const releases = [];
  await pool(
    Array.from({ length: RELEASES }, (_, i) => i),
    8,
    async (i) => releases.push(await installRelease(i)),
  );
  releases.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  console.log(
    `set up ${RELEASES} releases x 5 objects in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );

  // The first check decodes every helm record; later ones reuse them (same revision).
  await measure('first check of a clean cluster', releases, 'correct');
  await measure('steady state: check of a clean cluster', releases, 'correct');

  const changed = releases.slice(0, 10);
  await pool(changed, 4, async (r) => {
    const ns = r.namespace;
    await mergePatch(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: r.name, namespace: ns },
        spec: { replicas: 5 },
      },
      'kubectl-scale',
    );
    await mergePatch(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `${r.name}-config`, namespace: ns },
        data: { level: 'debug' },
      },
      'kubectl-edit',
    );
    await mergePatch(
      {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: r.name, namespace: ns, labels: { owner: 'someone' } },
      },
      'kubectl-label',
    );
    await clients.core.deleteNamespacedService({ name: r.name, namespace: ns });
  });
  await measure('after 40 changes by hand in 10 releases: warn', releases, 'warn');
  await measure('the same drift: correct', releases, 'correct');
  await measure('after the correction: check of a clean cluster', releases, 'correct');
} finally {
  if (ownPlane) await stopControlPlane(ownPlane.dir);
  else {
    // Leave the caller's control plane as we found it.
    const list = await clients.core.listNamespace();
    await Promise.all(
      list.items
        .filter((n) => n.metadata?.name?.startsWith(`bench-drift-${RUN}-`))
        .map((n) => clients.core.deleteNamespace({ name: n.metadata.name }).catch(() => undefined)),
    );
  }
  if (ownPlane) rmSync(ownPlane.dir, { recursive: true, force: true });
}
