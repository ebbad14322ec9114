// mooring's own kubeconfig reading (src/kube/kubeconfig.ts), against files made here: which
// file and context win, relative paths, every kind of credential the agent supports, and
// the errors a user sees. The REST client is exercised against a real API server by the
// integration tests.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKubeTarget } from '../../src/kube/kubeconfig.js';

const dir = mkdtempSync(join(tmpdir(), 'mooring-kubeconfig-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

function kubeconfig(opts: { current?: string; clusters: string; users: string; contexts: string }) {
  return [
    'apiVersion: v1',
    'kind: Config',
    ...(opts.current ? [`current-context: ${opts.current}`] : []),
    'clusters:',
    opts.clusters,
    'users:',
    opts.users,
    'contexts:',
    opts.contexts,
  ].join('\n');
}

describe('loadKubeTarget', () => {
  file('ca.crt', 'CA PEM');
  const east = file(
    'east.yaml',
    kubeconfig({
      current: 'east',
      clusters: [
        '- name: east',
        '  cluster: {server: "https://east:6443", certificate-authority: ca.crt, tls-server-name: api.east}',
        '- name: shared',
        '  cluster: {server: "https://from-east:6443"}',
      ].join('\n'),
      users: '- name: alice\n  user: {token: east-token, as: bob, as-groups: [ops, dev]}',
      contexts:
        '- name: east\n  context: {cluster: east, user: alice}\n- name: shared\n  context: {cluster: shared, user: alice}',
    }),
  );
  const west = file(
    'west.yaml',
    kubeconfig({
      current: 'west',
      clusters:
        '- name: west\n  cluster: {server: "https://west:6443", insecure-skip-tls-verify: true}\n- name: shared\n  cluster: {server: "https://from-west:6443"}',
      users: `- name: carol\n  user: {username: carol, password: s3cret}`,
      contexts: '- name: west\n  context: {cluster: west, user: carol}',
    }),
  );

  it('merges KUBECONFIG as kubectl does: the first file to set a name or the current context wins', async () => {
    const target = loadKubeTarget({ env: { KUBECONFIG: `${east}:${west}`, HOME: dir } });
    expect(target.context).toBe('east');
    expect(target.contexts).toEqual(['east', 'shared', 'west']);
    expect(target.server).toBe('https://east:6443');
    const options = await target.requestOptions();
    // A relative CA path is relative to the kubeconfig file.
    expect(options.ca?.toString()).toBe('CA PEM');
    expect(options.servername).toBe('api.east');
    expect(options.headers).toEqual({
      Authorization: 'Bearer east-token',
      'Impersonate-User': 'bob',
      'Impersonate-Group': 'ops,dev',
    });
    expect(loadKubeTarget({ env: { KUBECONFIG: `${east}:${west}` }, context: 'shared' }).server).toBe(
      'https://from-east:6443',
    );
    const carol = await loadKubeTarget({ env: { KUBECONFIG: `${west}:${east}` } }).requestOptions();
    expect(carol.rejectUnauthorized).toBe(false);
    expect(carol.headers?.Authorization).toBe(`Basic ${Buffer.from('carol:s3cret').toString('base64')}`);
  });

  it('names the known contexts when the one asked for does not exist, and the file it could not read', () => {
    expect(() => loadKubeTarget({ kubeconfig: east, context: 'nowhere' })).toThrow(
      expect.objectContaining({
        message: 'kubeconfig has no context named nowhere',
        hint: 'known contexts: east, shared',
      }),
    );
    expect(() => loadKubeTarget({ kubeconfig: join(dir, 'missing.yaml') })).toThrow(
      /cannot load the kubeconfig .*missing\.yaml/,
    );
    const empty = file('empty.yaml', 'apiVersion: v1\nkind: Config\n');
    expect(() => loadKubeTarget({ kubeconfig: empty })).toThrow(/no Kubernetes cluster configured/);
  });

  it('reads a token file again as it rotates, and client certificates from data', async () => {
    const token = file('token', 'first\n');
    const cfg = file(
      'files.yaml',
      kubeconfig({
        current: 'c',
        clusters:
          '- name: c\n  cluster: {server: "https://c:6443", certificate-authority-data: Q0EgREFUQQ==}',
        users: `- name: u\n  user: {tokenFile: token, client-certificate-data: Q0VSVA==, client-key-data: S0VZ}`,
        contexts: '- name: c\n  context: {cluster: c, user: u}',
      }),
    );
    const target = loadKubeTarget({ kubeconfig: cfg });
    const first = await target.requestOptions();
    expect(first.headers?.Authorization).toBe('Bearer first');
    expect([first.ca?.toString(), first.cert?.toString(), first.key?.toString()]).toEqual([
      'CA DATA',
      'CERT',
      'KEY',
    ]);
    writeFileSync(token, 'second\n');
    // Read at most once a minute, like client-go.
    expect((await target.requestOptions()).headers?.Authorization).toBe('Bearer first');
  });

  it('runs an exec credential plugin with the cluster in KUBERNETES_EXEC_INFO, and again when its credential expired', async () => {
    const counter = join(dir, 'exec-count');
    writeFileSync(counter, '0');
    const plugin = file(
      'plugin.sh',
      [
        '#!/bin/sh',
        `n=$(($(cat ${counter}) + 1)); echo $n > ${counter}`,
        // An expiry in the past the second time, to prove it runs again; info is passed in.
        'case "$KUBERNETES_EXEC_INFO" in *https://exec:6443*) ;; *) exit 3;; esac',
        'echo "{\\"apiVersion\\":\\"client.authentication.k8s.io/v1\\",\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"exec-$n-$PLUGIN_SUFFIX\\",\\"expirationTimestamp\\":\\"2000-01-01T00:00:00Z\\"}}"',
      ].join('\n'),
    );
    chmodSync(plugin, 0o755);
    const cfg = file(
      'exec.yaml',
      kubeconfig({
        current: 'e',
        clusters: '- name: e\n  cluster: {server: "https://exec:6443"}',
        users: `- name: u\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1, command: ${plugin}, env: [{name: PLUGIN_SUFFIX, value: x}]}`,
        contexts: '- name: e\n  context: {cluster: e, user: u}',
      }),
    );
    const target = loadKubeTarget({ kubeconfig: cfg });
    expect((await target.requestOptions()).headers?.Authorization).toBe('Bearer exec-1-x');
    expect((await target.requestOptions()).headers?.Authorization).toBe('Bearer exec-2-x');
  });

  it('uses the pod service account in a cluster when no kubeconfig is set', async () => {
    const sa = mkdtempSync(join(tmpdir(), 'mooring-sa-'));
    writeFileSync(join(sa, 'token'), 'sa-token');
    writeFileSync(join(sa, 'ca.crt'), 'SA CA');
    const target = loadKubeTarget({
      env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
      serviceAccountDir: sa,
    });
    expect(target.server).toBe('https://[fd00::1]:443');
    const options = await target.requestOptions();
    expect(options.headers?.Authorization).toBe('Bearer sa-token');
    expect(options.ca?.toString()).toBe('SA CA');
  });
});
