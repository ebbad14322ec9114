import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MooringError } from '../../src/errors.js';
import { chartDirDigest } from '../../src/plan/digest.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'mooring-chart-digest-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function put(files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** Folder by folder, names in code-unit order: `a/x` before `a-b`. */
function walkOrder(a: string, b: string): number {
  const [x, y] = [a.split('/'), b.split('/')];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  }
  return x.length - y.length;
}

/** The digest as defined: each file's path in the chart, NUL, its bytes, NUL, in walk order. */
function expected(files: Record<string, string>, chart: string): string {
  const h = createHash('sha256');
  for (const path of Object.keys(files).sort(walkOrder)) {
    h.update(`${path.slice(chart.length + 1)}\0${files[path]}\0`);
  }
  return h.digest('hex');
}

describe('chartDirDigest', () => {
  it('covers every path and byte of the chart, folder by folder in name order, whatever the number of files', async () => {
    const files: Record<string, string> = {
      'charts/app/Chart.yaml': 'apiVersion: v2\nname: app\nversion: 0.1.0\n',
      'charts/app/values.yaml': 'a: 1\n',
      'charts/app/templates/B.yaml': 'kind: B\n',
      'charts/app/templates/a.yaml': 'kind: A\n',
      'charts/app/templates/a-b.yaml': 'kind: AB\n',
      'charts/app/templates/a/x.yaml': 'kind: X\n',
    };
    // More files than one read batch, in nested folders.
    for (let i = 0; i < 300; i++) files[`charts/app/files/part-${i % 7}/f${i}.txt`] = `file ${i}\n`;
    await put({ ...files, 'charts/other/values.yaml': 'not: this chart\n' });

    expect(await chartDirDigest(root, 'charts/app')).toBe(expected(files, 'charts/app'));

    await put({ 'charts/app/files/part-3/f3.txt': 'changed\n' });
    expect(await chartDirDigest(root, 'charts/app')).not.toBe(expected(files, 'charts/app'));
  });

  it('refuses a symlink in the chart, naming it', async () => {
    await put({ 'charts/app/Chart.yaml': 'name: app\n', 'secret.txt': 'x\n' });
    await mkdir(join(root, 'charts/app/templates'));
    await symlink(join(root, 'secret.txt'), join(root, 'charts/app/templates/link.yaml'));
    const err = await chartDirDigest(root, 'charts/app').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MooringError);
    expect(String((err as Error).message)).toContain('charts may not contain symlinks');
    expect(JSON.stringify(err)).toContain('charts/app/templates/link.yaml');
  });
});
