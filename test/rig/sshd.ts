// A real OpenSSH server for the SSH Git tests: `sshd` (Debian's openssh-server; `.ci/run`
// installs it when missing) on a free port of 127.0.0.1, with its own configuration, host
// key and authorized key in a scratch folder, serving the bare repositories of that machine
// through `git-upload-pack` as any Git host does. Protocol v2 reaches it as git sends it,
// through the GIT_PROTOCOL environment variable (`AcceptEnv`), unless `protocolV2` is false.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SSHD_CANDIDATES = ['/usr/sbin/sshd', '/usr/local/sbin/sshd'];

export interface SshKeyPair {
  /** Path of the private key (OpenSSH format, no passphrase). */
  privateKeyFile: string;
  /** `ssh-ed25519 AAAA... comment` */
  publicKey: string;
}

export interface Sshd {
  host: string;
  port: number;
  /** The user the server lets the client key in as (the one running the tests). */
  user: string;
  /** The server's host key line for a known_hosts file: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`. */
  knownHostsLine: string;
  /** A key the server accepts. */
  clientKey: SshKeyPair;
  /** `ssh://USER@127.0.0.1:PORT/ABSOLUTE/PATH` of a bare repository on this machine. */
  urlFor(gitdir: string): string;
  /** Everything sshd logged (-e), for assertion messages and counting connections. */
  log(): string;
  stop(): Promise<void>;
}

/** An ed25519 key pair made with ssh-keygen. */
export async function makeKeyPair(dir: string, name: string): Promise<SshKeyPair> {
  const file = join(dir, name);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  return { privateKeyFile: file, publicKey: (await readFile(`${file}.pub`, 'utf8')).trim() };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something on the port answers with an SSH banner. */
async function waitForBanner(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`sshd exited with ${proc.exitCode}:\n${log()}`);
    const banner = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let got = '';
      socket.on('data', (d) => {
        got += d.toString('latin1');
        socket.destroy();
      });
      socket.on('error', () => resolve(''));
      socket.on('close', () => resolve(got));
    });
    if (banner.startsWith('SSH-')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd did not answer on 127.0.0.1:${port}:\n${log()}`);
}

export async function startSshd(options: { protocolV2?: boolean } = {}): Promise<Sshd> {
  const sshd = SSHD_CANDIDATES.find((p) => existsSync(p));
  if (!sshd) {
    throw new Error(
      'the SSH Git tests need OpenSSH sshd: apt-get install openssh-server (bash .ci/run installs it)',
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'mooring-sshd-'));
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'mooring-test-host', '-f', hostKey]);
  const clientKey = await makeKeyPair(dir, 'client_ed25519');
  // `restrict`: no forwarding, no pty; an exec of git-upload-pack is all a deploy key needs.
  await writeFile(join(dir, 'authorized_keys'), `restrict ${clientKey.publicKey}\n`, { mode: 0o600 });
  const port = await freePort();
  const user = userInfo().username;
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'UsePAM no',
    'StrictModes no',
    'PrintMotd no',
    `AllowUsers ${user}`,
    ...(options.protocolV2 === false ? [] : ['AcceptEnv GIT_PROTOCOL']),
    'LogLevel VERBOSE',
    '',
  ].join('\n');
  const configFile = join(dir, 'sshd_config');
  await writeFile(configFile, config);
  // Debian's sshd wants its privilege separation folder, which only the service unit makes.
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  let output = '';
  const proc = spawn(sshd, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d: Buffer) => (output += d.toString('utf8')));
  proc.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')));
  await waitForBanner(port, proc, () => output);
  const hostPub = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/);
  return {
    host: '127.0.0.1',
    port,
    user,
    knownHostsLine: `[127.0.0.1]:${port} ${hostPub[0]} ${hostPub[1]}`,
    clientKey,
    urlFor: (gitdir) => `ssh://${user}@127.0.0.1:${port}${gitdir}`,
    log: () => output,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
