// A real Helm chart repository for tests: charts packaged with `helm package`, indexed with
// `helm repo index`, served from a folder by a small static HTTP(S) server that answers
// conditional requests (ETag, If-Modified-Since) as static servers do, can demand basic
// auth, and records every request so tests can count what mooring asked for.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { execa } from 'execa';
import { HELM } from './agent.js';

export interface ChartRequest {
  method: string;
  path: string;
  status: number;
  /** The request carried If-None-Match or If-Modified-Since. */
  conditional: boolean;
  /** The Authorization header as sent (tests check it is absent or right). */
  authorization: string | undefined;
}

export interface ChartRepoServer {
  url: string;
  dir: string;
  requests: ChartRequest[];
  /** Packages a chart (files relative to the chart folder) and re-indexes the repository. */
  publish(name: string, version: string, files?: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

export interface ChartRepoOptions {
  /** Basic auth, or a bearer token (`Authorization: Bearer <token>`). */
  auth?: { username: string; password: string } | { token: string };
  tls?: { cert: string; key: string };
}

/** The files of a tiny chart: one ConfigMap `<release>-chart` with the chart's `image.tag` default. */
export function tinyChart(name: string, version: string, tag = `tag-${version}`): Record<string, string> {
  return {
    'Chart.yaml': `apiVersion: v2\nname: ${name}\nversion: ${version}\n`,
    'values.yaml': `image:\n  repository: registry.example/${name}\n  tag: ${tag}\ngreeting: hello\n`,
    'templates/configmap.yaml': [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: {{ .Release.Name }}-chart',
      'data:',
      '  chartVersion: {{ .Chart.Version | quote }}',
      '  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"',
      '  greeting: {{ .Values.greeting | quote }}',
      '',
    ].join('\n'),
  };
}

export async function startChartRepo(options: ChartRepoOptions = {}): Promise<ChartRepoServer> {
  const dir = await mkdtemp(join(tmpdir(), 'mooring-chart-repo-'));
  const requests: ChartRequest[] = [];
  const handler: http.RequestListener = (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const record = (status: number) =>
      requests.push({
        method: req.method ?? 'GET',
        path,
        status,
        conditional:
          req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined,
        authorization: req.headers.authorization,
      });
    if (options.auth) {
      const expected =
        'token' in options.auth
          ? `Bearer ${options.auth.token}`
          : `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        record(401);
        res
          .writeHead(401, {
            'www-authenticate': 'token' in options.auth ? 'Bearer realm="charts"' : 'Basic realm="charts"',
          })
          .end('unauthorized\n');
        return;
      }
    }
    const file = normalize(join(dir, decodeURIComponent(path)));
    if (!file.startsWith(dir + '/')) {
      record(404);
      res.writeHead(404).end();
      return;
    }
    void (async () => {
      try {
        const [data, st] = await Promise.all([readFile(file), stat(file)]);
        const etag = `"${createHash('sha256').update(data).digest('hex').slice(0, 32)}"`;
        const modified = new Date(Math.floor(st.mtimeMs / 1000) * 1000);
        const since = req.headers['if-modified-since'];
        const notModified =
          req.headers['if-none-match'] !== undefined
            ? req.headers['if-none-match'] === etag
            : since !== undefined && new Date(since).getTime() >= modified.getTime();
        if (notModified) {
          record(304);
          res.writeHead(304, { etag }).end();
          return;
        }
        record(200);
        res
          .writeHead(200, { etag, 'last-modified': modified.toUTCString(), 'content-length': data.length })
          .end(data);
      } catch {
        record(404);
        res.writeHead(404).end('not found\n');
      }
    })();
  };
  const server = options.tls
    ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}/charts`;
  const charts = join(dir, 'charts');
  await mkdir(charts);
  return {
    url,
    dir: charts,
    requests,
    async publish(name, version, files = tinyChart(name, version)) {
      const src = await mkdtemp(join(tmpdir(), 'mooring-chart-src-'));
      try {
        for (const [rel, content] of Object.entries(files)) {
          await mkdir(dirname(join(src, name, rel)), { recursive: true });
          await writeFile(join(src, name, rel), content);
        }
        await execa(HELM, ['package', join(src, name), '--destination', charts]);
        await execa(HELM, ['repo', 'index', charts, '--url', url]);
      } finally {
        await rm(src, { recursive: true, force: true });
      }
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
