#!/usr/bin/env node
// Benchmark: `plan` for every cluster of a generated repository of 50 clusters and 20
// releases each, with SOPS secrets (encrypted by the real sops). Prints figures; asserts
// nothing. Run: npm run bench (or node bench/plan.mjs after npm run setup).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, '.tools', 'bin');
const { planCluster } = await import(join(root, 'dist/plan/cluster-plan.js'));
const { loadAgeIdentities } = await import(join(root, 'dist/resolve/age-key.js'));
const { decryptSops } = await import(join(root, 'dist/resolve/sops.js'));
const { secretDigestKey } = await import(join(root, 'dist/secrets/hash.js'));
const { createHelm } = await import(join(root, 'dist/converge/helm.js'));

const CLUSTERS = 50;
const RELEASES = 20;
const dir = mkdtempSync(join(tmpdir(), 'mooring-bench-plan-'));
const write = (rel, text) => {
  mkdirSync(dirname(join(dir, rel)), { recursive: true });
  writeFileSync(join(dir, rel), text);
};

// An age key and a helper that encrypts with the real sops.
const keyText = execFileSync(join(bin, 'age-keygen'), {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'ignore'],
});
const recipient = /# public key: (age1\S+)/.exec(keyText)[1];
const keyFile = join(dir, 'key.txt');
writeFileSync(keyFile, keyText);
const encrypt = (rel, plain) => {
  write(`${rel}.plain`, plain);
  const out = execFileSync(
    join(bin, 'sops'),
    [
      '--encrypt',
      '--age',
      recipient,
      '--input-type',
      'yaml',
      '--output-type',
      'yaml',
      join(dir, `${rel}.plain`),
    ],
    { encoding: 'utf8' },
  );
  rmSync(join(dir, `${rel}.plain`));
  write(rel, out);
};

const t0 = performance.now();
write('charts/app/Chart.yaml', 'apiVersion: v2\nname: app\nversion: 0.1.0\n');
write(
  'charts/app/values.yaml',
  'replicas: 1\nimage: {repository: nginx, tag: "1.27"}\nconfig: {}\nsecretEnv: {}\nresources: {requests: {cpu: 10m}}\n',
);
write(
  'charts/app/templates/all.yaml',
  [
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata:\n{{- range $k, $v := .Values.config }}\n  {{ $k }}: {{ $v | quote }}\n{{- end }}',
    'apiVersion: v1\nkind: Secret\nmetadata: {name: {{ .Release.Name }}}\nstringData:\n{{- range $k, $v := .Values.secretEnv }}\n  {{ $k }}: {{ $v | quote }}\n{{- end }}',
    'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: {{ .Release.Name }}}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector: {matchLabels: {app: {{ .Release.Name }}}}\n  template:\n    metadata: {labels: {app: {{ .Release.Name }}}}\n    spec:\n      containers:\n        - name: app\n          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"',
  ].join('\n---\n') + '\n',
);
const names = Array.from({ length: RELEASES }, (_, i) => `app-${String(i + 1).padStart(2, '0')}`);
write(
  'environments/common/releases.yaml',
  `releases:\n${names.map((n) => `  ${n}:\n    chart: ./charts/app\n    namespace: ${n}\n`).join('')}`,
);
write('environments/common/values.yaml', 'config: {LOG_FORMAT: json}\n');
for (const n of names)
  write(`environments/common/values/${n}.yaml`, `config: {SERVICE: ${n}}\nreplicas: 2\n`);
encrypt('environments/common/secrets.sops.yaml', 'secretEnv: {SHARED_TOKEN: shared-secret-value}\n');
for (const env of ['dev', 'prod']) {
  write(`environments/${env}/values.yaml`, `config: {ENV: ${env}}\n`);
  encrypt(`environments/${env}/secrets/app-01.sops.yaml`, `secretEnv: {DB_PASSWORD: ${env}-password}\n`);
}
for (let c = 1; c <= CLUSTERS; c++) {
  const name = `cluster-${String(c).padStart(2, '0')}`;
  write(
    `clusters/${name}/cluster.yaml`,
    `environment: ${c % 2 ? 'dev' : 'prod'}\nregion: region-${c % 5}\ncloud: aws\n`,
  );
  write(`clusters/${name}/values/app-02.yaml`, `replicas: ${c}\n`);
}
const generateMs = performance.now() - t0;

const identities = await loadAgeIdentities({ env: {}, ageKeyFile: keyFile });
const deps = {
  decrypt: (text, file) => decryptSops(text, file, identities),
  digestKey: secretDigestKey(identities.map((i) => i.deriveKey('digest').toString('hex'))),
};

// 1. Offline plan (resolve, decrypt, merge, digest) of every cluster, in process.
let peakRss = process.memoryUsage().rss;
const sample = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 5);
const startCpu = process.cpuUsage();
const t1 = performance.now();
let releaseCount = 0;
for (let c = 1; c <= CLUSTERS; c++) {
  const plan = await planCluster(dir, `cluster-${String(c).padStart(2, '0')}`, deps);
  releaseCount += plan.releases.length;
  if (plan.releases.some((r) => r.error)) throw new Error(plan.releases.find((r) => r.error).error.message);
}
const offlineMs = performance.now() - t1;
const cpu = process.cpuUsage(startCpu);
clearInterval(sample);
peakRss = Math.max(peakRss, process.memoryUsage().rss);

// 2. Full plan with rendering (helm template per release), for a few clusters.
const helm = createHelm({ binary: join(bin, 'helm') });
const RENDERED = 3;
const t2 = performance.now();
for (let c = 1; c <= RENDERED; c++) {
  await planCluster(dir, `cluster-${String(c).padStart(2, '0')}`, {
    ...deps,
    render: (resolved, chart) =>
      helm.template({
        ...chart,
        release: resolved.release.name,
        namespace: resolved.release.namespace,
        values: resolved.merge.userValues,
        redact: resolved.secretStrings,
      }),
  });
}
const renderedMs = performance.now() - t2;
rmSync(dir, { recursive: true, force: true });

const fmt = (n) => n.toFixed(1);
console.log(
  'bench/plan: 50 clusters x 20 releases, SOPS files shared by every release (common) and for one release (environment)',
);
console.log(`  generate repository (incl. real sops)   ${fmt(generateMs)} ms`);
console.log(
  `  offline plan, all clusters              ${fmt(offlineMs)} ms total, ${fmt(offlineMs / CLUSTERS)} ms per cluster, ${fmt(offlineMs / releaseCount)} ms per release (${releaseCount} releases)`,
);
console.log(`  offline plan CPU                        ${fmt((cpu.user + cpu.system) / 1000)} ms`);
console.log(`  peak RSS during offline plans           ${fmt(peakRss / 1024 / 1024)} MiB`);
console.log(
  `  plan with helm template, ${RENDERED} clusters    ${fmt(renderedMs)} ms total, ${fmt(renderedMs / RENDERED)} ms per cluster`,
);
