import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import { fingerprint, knownHostsName, knownKeyTypes, readKnownHosts, recordHostKey, verifyHostKey } from './known-hosts.js';
import type { RemoteCall } from './remote-scripts.js';
import { TransportError, type ConnectTarget, type ExecResult, type Session, type Transport } from './transport.js';

/** Expands a leading `~/` to the home directory of the user running fwgen. */
export function expandHome(path: string): string {
  return path === '~' ? homedir() : path.startsWith('~/') ? `${homedir()}/${path.slice(2)}` : path;
}

/** Single-quotes a string for POSIX sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const SUDO_REFUSED = /sudo: (a password is required|a terminal is required)|may not run sudo|is not in the sudoers|not allowed to execute/;
const DEFAULT_KEYS = ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa'];

/** SSH through node-ssh, with host keys verified against known_hosts. */
export class SshTransport implements Transport {
  // Read once per run, not once per connection (a run may open hundreds).
  private readonly knownHosts = new Map<string, ReturnType<typeof readKnownHosts>>();
  private readonly keys = new Map<string, string | undefined>();

  async connect(target: ConnectTarget): Promise<Session> {
    const { ssh } = target;
    const knownHostsPath = expandHome(ssh.knownHosts);
    if (!this.knownHosts.has(knownHostsPath)) this.knownHosts.set(knownHostsPath, readKnownHosts(knownHostsPath));
    const entries = this.knownHosts.get(knownHostsPath)!;
    const keyId = ssh.identity ?? '';
    if (!this.keys.has(keyId)) this.keys.set(keyId, readPrivateKey(ssh.identity));
    // An ssh-rsa key is used with rsa-sha2-* signatures by modern servers (plain ssh-rsa is SHA-1).
    const keyTypes = knownKeyTypes(entries, ssh.host, ssh.port).flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', t] : [t]));
    let verdict: 'match' | 'mismatch' | 'unknown' | 'accepted' = 'unknown';
    let presented = '';
    const client = new NodeSSH();
    try {
      await client.connect({
        host: ssh.host,
        port: ssh.port,
        username: ssh.user,
        privateKey: this.keys.get(keyId),
        agent: process.env.SSH_AUTH_SOCK || undefined,
        readyTimeout: target.timeoutMs,
        keepaliveInterval: 5000,
        // Ask for a key type known_hosts has for this host, as OpenSSH does.
        algorithms: keyTypes.length > 0 ? { serverHostKey: keyTypes as never } : undefined,
        hostVerifier: (key: Buffer) => {
          presented = fingerprint(key);
          verdict = verifyHostKey(entries, ssh.host, ssh.port, key);
          if (verdict === 'unknown' && target.acceptNew) {
            recordHostKey(knownHostsPath, ssh.host, ssh.port, key);
            this.knownHosts.delete(knownHostsPath);
            verdict = 'accepted';
          }
          return verdict === 'match' || verdict === 'accepted';
        },
      });
    } catch (err) {
      client.dispose();
      throw classify(err as Error, verdict, presented, target, knownHostsPath);
    }
    // Small request/response exchanges: without this, Nagle and delayed ACKs add ~40 ms stalls.
    (client.connection as unknown as { _sock?: { setNoDelay?: (v: boolean) => void } } | null)?._sock?.setNoDelay?.(true);
    return new SshSession(client, ssh.sudo);
  }
}

function readPrivateKey(identity: string | undefined): string | undefined {
  for (const candidate of identity ? [identity] : DEFAULT_KEYS) {
    const path = expandHome(candidate);
    if (existsSync(path)) return readFileSync(path, 'utf8');
  }
  return undefined;
}

function classify(err: Error, verdict: string, presented: string, target: ConnectTarget, knownHostsPath: string): TransportError {
  const where = `${target.ssh.user}@${knownHostsName(target.ssh.host, target.ssh.port)}`;
  if (verdict === 'mismatch') {
    return new TransportError('host-key-changed', `host key for ${knownHostsName(target.ssh.host, target.ssh.port)} does not match ${knownHostsPath} (presented ${presented}); if the host was reinstalled, remove the old key with ssh-keygen -R`);
  }
  if (verdict === 'unknown' && presented) {
    return new TransportError('host-key-unknown', `host key for ${knownHostsName(target.ssh.host, target.ssh.port)} is not in ${knownHostsPath} (presented ${presented}); verify it and add it, or run with --accept-new`);
  }
  const msg = err.message || String(err);
  if (/authentication methods failed|All configured authentication/i.test(msg)) {
    return new TransportError('auth-failed', `authentication failed for ${where} (check ssh.user, ssh.identity or the agent)`);
  }
  if (/Timed out/i.test(msg)) return new TransportError('timeout', `connection to ${where} timed out`);
  return new TransportError('unreachable', `cannot connect to ${where}: ${msg}`);
}

class SshSession implements Session {
  constructor(
    private readonly client: NodeSSH,
    private readonly sudo: boolean,
  ) {}

  async run(call: RemoteCall, stdin?: Buffer): Promise<ExecResult> {
    // `sh -c SCRIPT NAME ARGS...`: the values reach the script as $1..$n, never as code.
    const words = [shq(call.script), `fwgen-${call.name}`, ...call.args.map(shq)].join(' ');
    const command = this.sudo ? `sudo -n sh -c ${words}` : `sh -c ${words}`;
    const conn = this.client.connection;
    if (!conn) throw new TransportError('unreachable', 'connection closed');
    const result = await new Promise<ExecResult>((resolve, reject) => {
      conn.exec(command, (err: Error | undefined, stream: ClientChannel) => {
        if (err) return reject(new TransportError('unreachable', err.message));
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let exitCode: number | undefined;
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errOut.push(d));
        stream.on('exit', (code: number | null) => {
          if (typeof code === 'number') exitCode = code;
        });
        stream.on('close', () => {
          // No exit status means the connection went away mid-command: that is not a command failure.
          if (exitCode === undefined) return reject(new TransportError('unreachable', 'connection lost while a command was running'));
          resolve({ code: exitCode, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') });
        });
        stream.on('error', (e: Error) => reject(new TransportError('unreachable', e.message)));
        stream.end(stdin ?? undefined);
      });
    });
    const refusal = this.sudo && result.code !== 0 ? result.stderr.split('\n').find((l) => SUDO_REFUSED.test(l)) : undefined;
    if (refusal) throw new TransportError('sudo-password', `sudo -n refused: ${refusal.trim()} (ssh.sudo needs passwordless sudo for this user)`);
    return result;
  }

  close(): void {
    this.client.dispose();
  }
}
