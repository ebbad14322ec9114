#!/usr/bin/env node
// What the Git source costs on the wire: the first checkout, a poll of an unchanged branch
// (the agent's steady state, every --interval), and the fetch of a one-file change. Compared
// with isomorphic-git's own listServerRefs, which negotiates before every listing.
// Runs against the local git http-backend server; needs the compiled agent (npm run build).
// Prints figures; asserts nothing.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { listServerRefs } from 'isomorphic-git';
import { commitFiles, createRepo, startGitServer } from '../scripts/lib/gitserver.mjs';

const dist = process.env.MOORING_DIST ?? new URL('../dist', import.meta.url).pathname;
const { GitSource } = await import(pathToFileURL(join(dist, 'source', 'git-source.js')).href);
const { createHttpClient } = await import(pathToFileURL(join(dist, 'source', 'http-client.js')).href);

const POLLS = Number(process.env.POLLS ?? 50);
const base = await mkdtemp(join(tmpdir(), 'mooring-bench-git-'));
try {
  // A repository shaped like a real one: a few clusters and environments, a chart, some history.
  const content = join(base, 'content');
  for (const env of ['common', 'dev', 'staging', 'prod']) {
    await mkdir(join(content, 'environments', env, 'values'), { recursive: true });
    await writeFile(join(content, 'environments', env, 'values.yaml'), `replicas: 2\nenv: ${env}\n`);
    for (const r of ['web', 'api', 'cache', 'worker']) {
      await writeFile(
        join(content, 'environments', env, 'values', `${r}.yaml`),
        `image: ${r}:1.0.0\n`.repeat(20),
      );
    }
  }
  for (let i = 0; i < 20; i++) {
    await mkdir(join(content, 'clusters', `c${i}`), { recursive: true });
    await writeFile(join(content, 'clusters', `c${i}`, 'cluster.yaml'), `environment: prod\nregion: r${i}\n`);
  }
  await mkdir(join(content, 'charts', 'web', 'templates'), { recursive: true });
  await writeFile(
    join(content, 'charts', 'web', 'Chart.yaml'),
    'apiVersion: v2\nname: web\nversion: 1.0.0\n',
  );
  await writeFile(
    join(content, 'charts', 'web', 'templates', 'deploy.yaml'),
    'kind: Deployment\n'.repeat(100),
  );
  const root = join(base, 'repos');
  await mkdir(root);
  createRepo(root, 'gitops.git', content);
  for (let i = 0; i < 30; i++)
    commitFiles(root, 'gitops.git', { files: { [`history/${i}.txt`]: `${i}\n` }, message: `h${i}` });
  for (let i = 0; i < 50; i++)
    commitFiles(root, 'gitops.git', { files: { x: 'y' }, message: 'b', branch: `feature-${i}` });

  const server = await startGitServer({ root });
  const url = server.repoUrl('gitops.git');
  const source = new GitSource({ url, branch: 'main', workDir: join(base, 'work') });

  /** Runs `op` and returns what it cost, seen from the server. */
  const measure = async (op, times = 1) => {
    const mark = server.requests.length;
    const wire = server.traffic();
    const started = process.hrtime.bigint();
    for (let i = 0; i < times; i++) await op();
    const ms = Number(process.hrtime.bigint() - started) / 1e6 / times;
    const reqs = server.requests.slice(mark);
    const after = server.traffic();
    return {
      requests: reqs.length / times,
      bodyBytesOut: reqs.reduce((n, r) => n + r.bytesOut, 0) / times,
      bodyBytesIn: reqs.reduce((n, r) => n + r.bytesIn, 0) / times,
      wireBytesOut: Math.round((after.bytesOut - wire.bytesOut) / times),
      wireBytesIn: Math.round((after.bytesIn - wire.bytesIn) / times),
      msPerOp: Number(ms.toFixed(2)),
    };
  };

  const rows = {};
  rows['first checkout (sync)'] = await measure(() => source.sync());
  rows['unchanged poll (sync)'] = await measure(() => source.sync(), POLLS);
  const http = createHttpClient();
  const prefix = 'refs/heads/main';
  rows['isomorphic-git listServerRefs v2'] = await measure(
    () => listServerRefs({ http, url, prefix, protocolVersion: 2 }),
    POLLS,
  );
  rows['isomorphic-git listServerRefs v1'] = await measure(
    () => listServerRefs({ http, url, prefix, protocolVersion: 1 }),
    POLLS,
  );
  http.close();
  commitFiles(root, 'gitops.git', {
    files: { 'clusters/c0/cluster.yaml': 'environment: dev\n' },
    message: 'move c0',
  });
  rows['one-file change (sync)'] = await measure(() => source.sync());

  console.log(`git source, ${POLLS} polls averaged; bytes seen by the server (out = to the agent)`);
  console.table(rows);
  await server.stop();
} finally {
  await rm(base, { recursive: true, force: true });
}
