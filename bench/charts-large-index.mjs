#!/usr/bin/env node
// A cold converge of RELEASES (20) releases of one chart from an HTTP chart repository whose
// index.yaml is large (INDEX_MB, default 4 MB: thousands of generated entries around the one
// real chart, as a public repository with years of releases has): `mooring run --once`
// against a sequential loop of `helm upgrade --install --repo URL --version RANGE`, the
// plain way to install a chart from a repository. ROUNDS (at least 3) of each, alternating.
//
// Figures per side: wall time (min, median), requests the repository answered (index.yaml,
// archives) and bytes it sent, the peak resident memory of one helm process and of all helm
// processes at once (sampled from /proc every 50 ms; only helm processes started by this
// benchmark or its agent), and the agent's own peak. Prints figures; asserts nothing.
// Needs the compiled agent (npm run build).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  HELM,
  chartFiles,
  machine,
  median,
  now,
  round,
  startAgent,
  startBenchRig,
  writeTree,
} from './lib/agent-rig.mjs';

const ROUNDS = Math.max(3, Number(process.env.ROUNDS ?? 3));
const RELEASES = Number(process.env.RELEASES ?? 20);
const INDEX_MB = Number(process.env.INDEX_MB ?? 4);
const CONCURRENCY = process.env.CONCURRENCY ?? '4';

/** A static chart repository on 127.0.0.1 with ETag revalidation, counting what it serves. */
async function serveRepo(dir) {
  const stats = { index: 0, index304: 0, archives: 0, bytes: 0 };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/+/, '');
    let body;
    try {
      body = readFileSync(join(dir, path));
    } catch {
      res.writeHead(404).end();
      return;
    }
    const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
    if (path === 'index.yaml') stats.index++;
    else stats.archives++;
    if (req.headers['if-none-match'] === etag) {
      if (path === 'index.yaml') stats.index304++;
      res.writeHead(304, { etag }).end();
      return;
    }
    stats.bytes += body.length;
    res.writeHead(200, { etag, 'content-length': body.length }).end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    stats,
    reset: () => Object.assign(stats, { index: 0, index304: 0, archives: 0, bytes: 0 }),
    stop: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  };
}

/** index.yaml: the real entry of the packaged chart, then generated charts until INDEX_MB. */
async function buildRepository(dir, chartDir, url) {
  await execa(HELM, ['package', chartDir, '--destination', dir]);
  await execa(HELM, ['repo', 'index', dir, '--url', url]);
  const real = readFileSync(join(dir, 'index.yaml'), 'utf8');
  const head = real.slice(0, real.indexOf('generated:'));
  const lines = [];
  let size = head.length;
  let entries = 0;
  for (let c = 0; size < INDEX_MB * 1024 * 1024; c++) {
    const name = `chart-${String(c).padStart(4, '0')}`;
    lines.push(`  ${name}:`);
    for (let v = 0; v < 30; v++) {
      const version = `${1 + Math.floor(v / 10)}.${v % 10}.0`;
      const digest = createHash('sha256').update(`${name}-${version}`).digest('hex');
      const entry = [
        '  - apiVersion: v2',
        `    appVersion: ${version}`,
        `    created: "2026-01-${String(1 + (v % 28)).padStart(2, '0')}T10:00:00.000000000Z"`,
        `    description: A generated chart that stands for the thousands of entries a public repository lists over the years (${name}).`,
        `    digest: ${digest}`,
        '    home: https://charts.example.com',
        '    keywords: [bench, generated]',
        `    name: ${name}`,
        '    urls:',
        `    - ${url}/${name}-${version}.tgz`,
        `    version: ${version}`,
      ].join('\n');
      lines.push(entry);
      size += entry.length + 1;
      entries++;
    }
  }
  const text = `${head.replace(/\n$/, '')}\n${lines.join('\n')}\ngenerated: "2026-01-01T00:00:00Z"\n`;
  writeFileSync(join(dir, 'index.yaml'), text);
  return { bytes: Buffer.byteLength(text), entries: entries + 1 };
}

/** Peak RSS (MiB) of helm processes whose parent is one of `parents`, sampled until stopped. */
function watchHelm(parents) {
  let peakOne = 0;
  let peakAll = 0;
  let peakAgent = 0;
  const timer = setInterval(() => {
    let all = 0;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        const ppid = Number(/PPid:\s+(\d+)/.exec(status)?.[1]);
        const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
        if (parents.agent !== undefined && Number(pid) === parents.agent)
          peakAgent = Math.max(peakAgent, rss);
        if (!/^Name:\s+helm$/m.test(status)) continue;
        if (ppid !== process.pid && ppid !== parents.agent) continue;
        peakOne = Math.max(peakOne, rss);
        all += rss;
      } catch {
        // the process ended meanwhile
      }
    }
    peakAll = Math.max(peakAll, all);
  }, 50);
  return () => {
    clearInterval(timer);
    return { peakOne, peakAll, peakAgent };
  };
}

const prefix = `bench-idx-${Date.now().toString(36)}`;
const rig = await startBenchRig({ nsPrefix: prefix });
const repoDir = join(rig.scratch, 'chart-repo');
writeTree(join(rig.scratch, 'src'), chartFiles('app'));
writeFileSync(join(rig.scratch, 'src', 'app', 'Chart.yaml'), 'apiVersion: v2\nname: app\nversion: 1.0.0\n');
writeTree(repoDir, {});
const server = await serveRepo(repoDir);
const index = await buildRepository(repoDir, join(rig.scratch, 'src', 'app'), server.url);

/** @type {Record<string, { ms: number[], requests: string[], peakOne: number[], peakAll: number[], agent: number[] }>} */
const results = {
  mooring: { ms: [], requests: [], peakOne: [], peakAll: [], agent: [] },
  helm: { ms: [], requests: [], peakOne: [], peakAll: [], agent: [] },
};
const describe = (s) =>
  `${s.index} index (${s.index304} 304), ${s.archives} archives, ${round(s.bytes / 2 ** 20, 1)} MiB`;

try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const side of r % 2 === 0 ? ['mooring', 'helm'] : ['helm', 'mooring']) {
      server.reset();
      const cluster = `${prefix}-${side[0]}${r}`;
      if (side === 'mooring') {
        const releases = [];
        for (let i = 0; i < RELEASES; i++) {
          const name = `r${String(i).padStart(2, '0')}`;
          releases.push(
            `  ${name}:\n    repo: ${server.url}\n    chart: app\n    version: ^1.0.0\n    namespace: ${cluster}-${name}\n    timeout: 2m\n`,
          );
        }
        const repo = rig.createRepo(`idx-${r}`, {
          [`clusters/${cluster}/cluster.yaml`]: 'environment: bench\n',
          'environments/bench/releases.yaml': `releases:\n${releases.join('')}`,
          'environments/bench/values.yaml': 'config: {v: "1"}\n',
        });
        const started = now();
        const agent = startAgent(
          [
            '--once',
            '--repo',
            repo.url,
            '--cluster',
            cluster,
            '--namespace',
            `${cluster}-agent`,
            '--work-dir',
            join(rig.scratch, `work-${r}`),
            '--concurrency',
            CONCURRENCY,
          ],
          rig.env,
        );
        const stop = watchHelm({ agent: agent.pid });
        const exit = await agent.exited;
        const ms = now() - started;
        const peaks = stop();
        if (exit.code !== 0)
          throw new Error(`mooring run --once exited ${exit.code}\n${agent.output().slice(-4000)}`);
        results.mooring.ms.push(ms);
        results.mooring.peakOne.push(peaks.peakOne);
        results.mooring.peakAll.push(peaks.peakAll);
        results.mooring.agent.push(peaks.peakAgent);
      } else {
        const stop = watchHelm({});
        const started = now();
        for (let i = 0; i < RELEASES; i++) {
          const name = `r${String(i).padStart(2, '0')}`;
          await rig.helm(
            [
              'upgrade',
              name,
              'app',
              '--repo',
              server.url,
              '--version',
              '^1.0.0',
              '--install',
              '--namespace',
              `${cluster}-${name}`,
              '--create-namespace',
              '--values',
              '-',
              '--wait',
              '--timeout',
              '2m',
            ],
            'config: {v: "1"}\n',
          );
        }
        const ms = now() - started;
        const peaks = stop();
        results.helm.ms.push(ms);
        results.helm.peakOne.push(peaks.peakOne);
        results.helm.peakAll.push(peaks.peakAll);
      }
      results[side].requests.push(describe(server.stats));
      console.log(
        `round ${r + 1} ${side}: ${round(results[side].ms.at(-1) / 1000, 1)} s, ${describe(server.stats)}`,
      );
    }
  }
} finally {
  await server.stop();
  await rig.stop();
}

const s = (ms) => round(ms / 1000, 1);
const mb = (xs) => `${round(Math.max(...xs), 0)}`;
console.log(
  `cold converge of ${RELEASES} releases from a repository with a ${round(index.bytes / 2 ** 20, 1)} MiB index.yaml (${index.entries} entries), ${ROUNDS} rounds alternating; ${machine()}`,
);
console.table({
  [`mooring run --once (--concurrency ${CONCURRENCY})`]: {
    'min s': s(Math.min(...results.mooring.ms)),
    'median s': s(median(results.mooring.ms)),
    'chart requests per round': results.mooring.requests[0],
    'peak one helm MiB': mb(results.mooring.peakOne),
    'peak all helm MiB': mb(results.mooring.peakAll),
    'peak agent MiB': mb(results.mooring.agent),
  },
  'sequential helm upgrade --install --repo loop': {
    'min s': s(Math.min(...results.helm.ms)),
    'median s': s(median(results.helm.ms)),
    'chart requests per round': results.helm.requests[0],
    'peak one helm MiB': mb(results.helm.peakOne),
    'peak all helm MiB': mb(results.helm.peakAll),
    'peak agent MiB': '-',
  },
});
console.log(
  `speed-up (helm loop / mooring): median ${round(median(results.helm.ms) / median(results.mooring.ms))}x, min ${round(Math.min(...results.helm.ms) / Math.min(...results.mooring.ms))}x`,
);
console.log(
  `all mooring s: ${results.mooring.ms.map(s).join(' ')}; all helm s: ${results.helm.ms.map(s).join(' ')}`,
);
