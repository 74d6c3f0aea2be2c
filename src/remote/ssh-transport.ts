import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import type { Duplex } from 'node:stream';
import type Ssh2 from 'ssh2';
import type { AnyAuthMethod, ClientChannel, ParsedKey } from 'ssh2';
import { readBounded } from '../util/read-bounded.js';
import { requireCjs } from '../util/require-cjs.js';
import { isLiteralHost, isPort } from './host-name.js';
import {
  fingerprint,
  knownHostsName,
  knownKeyTypes,
  readKnownHosts,
  recordHostKey,
  verifyHostKey,
} from './known-hosts.js';
import type { RemoteCall } from './scripts.js';
import { hopLabel, resolveReach, type Hop, type Reach } from './reach.js';
import { NO_SSH_CONFIG } from './ssh-config.js';
import {
  TransportError,
  type ConnectTarget,
  type ExecResult,
  type Reached,
  type Session,
  type Transport,
} from './transport.js';

/** Expands a leading `~/` to the home directory of the user running fwgen. */
export function expandHome(path: string): string {
  return path === '~' ? homedir() : path.startsWith('~/') ? `${homedir()}/${path.slice(2)}` : path;
}

/** Single-quotes a string for POSIX sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ssh2 is CommonJS (loaded with require, see require-cjs.ts).
const { Client, OpenSSHAgent, utils } = requireCjs('ssh2') as typeof Ssh2;
type Client = InstanceType<typeof Client>;

const SUDO_REFUSED =
  /sudo: (a password is required|a terminal is required)|may not run sudo|is not in the sudoers|not allowed to execute/;

/** Bounds on one remote step (one script run on a host). */
export interface StepLimits {
  /** A step still running after this many ms (plus the step's own `waitS`) fails the host. */
  readonly stepMs: number;
  /** A step whose stdout and stderr together pass this many bytes fails the host. */
  readonly outputBytes: number;
}

/**
 * Two minutes a step (the apply step: plus --timeout and the wait for the dead-man switch, see
 * remote/scripts.ts `waitS`), and 64 MiB of output: a read of a host with 100k rules and a 100k-member
 * ipset sends a few MiB.
 */
export const DEFAULT_STEP_LIMITS: StepLimits = { stepMs: 120_000, outputBytes: 64 * 1024 * 1024 };

/**
 * Host key signature algorithms fwgen accepts: ssh2's defaults without `ssh-rsa` (RSA with SHA-1,
 * refused by OpenSSH since 8.8); an RSA host key is used with rsa-sha2-512/256.
 */
export const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
];

/** ssh2's debug line that lists the server's host key algorithms. */
const REMOTE_HOST_KEYS = 'Handshake: (remote) Host key format: ';

/** Resolves a host's inventory settings into hops; the default ignores ssh_config. */
export type ReachResolver = (ssh: ConnectTarget['ssh']) => Reach;

/** A host key `--accept-new` recorded in known_hosts, as the CLI prints it and the deploy log records it. */
export interface AcceptedKey {
  /** The name recorded (`host` or `[host]:port`). */
  readonly name: string;
  readonly keyType: string;
  readonly fingerprint: string;
  readonly knownHosts: string;
}

/**
 * SSH through ssh2, host keys verified against known_hosts, through jump hosts when configured.
 * Each jump host gets one connection per run, shared by every host behind it (one forwarded
 * channel per target connection); `close()` ends them.
 */
export class SshTransport implements Transport {
  // Read once per run, not once per connection (a run may open hundreds).
  private readonly knownHosts = new Map<string, ReturnType<typeof readKnownHosts>>();
  private readonly jumps = new Map<string, Promise<Client>>();
  // Identity files parsed once per run: parsing a key (OpenSSL decoders) costs more than the handshake's signature.
  private readonly identities: IdentityCache = new Map();

  constructor(
    private readonly reachOf: ReachResolver = (ssh) => resolveReach(ssh, NO_SSH_CONFIG),
    /** A silent peer is declared lost after `keepaliveMs` × `keepaliveCount` ms. */
    private readonly keepalive = { keepaliveMs: 5000, keepaliveCount: 3 },
    /** Each step's deadline and output cap. */
    private readonly limits: StepLimits = DEFAULT_STEP_LIMITS,
    /** Told of every host key `--accept-new` records. */
    private readonly onAccepted: (key: AcceptedKey) => void = () => {},
  ) {}

  async connect(target: ConnectTarget): Promise<Session> {
    let reach: Reach;
    try {
      reach = this.reachOf(target.ssh);
    } catch (err) {
      throw new TransportError('unreachable', (err as Error).message);
    }
    let via: Client | undefined;
    for (let i = 0; i < reach.jumps.length; i++) {
      via = await this.jumpClient(reach.jumps.slice(0, i + 1), via, target);
    }
    const sock = via ? await forward(via, reach.target, reach.jumps.at(-1)!, target.timeoutMs) : undefined;
    const t = reach.target;
    const { client, auth } = await this.open(t, target, sock, reach.jumps.length > 0 ? 'target' : undefined);
    const alias = t.name !== t.host ? t.name : undefined;
    const reached: Reached = {
      host: t.host,
      port: t.port,
      user: t.user,
      alias,
      via: reach.jumps.map(hopLabel),
      key: auth,
    };
    return new SshSession(client, target.ssh.sudo, reached, this.limits);
  }

  /**
   * The entries of a known_hosts file, read once per run; refuses (ConfigError) a file that is not
   * one (readKnownHosts). The CLI loads every host's file before any host is touched.
   */
  loadKnownHosts(path: string): ReturnType<typeof readKnownHosts> {
    let entries = this.knownHosts.get(path);
    if (!entries) this.knownHosts.set(path, (entries = readKnownHosts(path)));
    return entries;
  }

  /** Ends the shared jump host connections. */
  close(): void {
    for (const p of this.jumps.values())
      p.then(
        (c) => c.end(),
        () => undefined,
      );
    this.jumps.clear();
  }

  private jumpClient(chain: readonly Hop[], via: Client | undefined, target: ConnectTarget): Promise<Client> {
    const key = chain.map((h) => `${h.user}@${h.host}:${h.port}`).join('>');
    let p = this.jumps.get(key);
    if (!p) {
      const hop = chain.at(-1)!;
      const label = `jump host ${hopLabel(hop)}`;
      p = (async () => {
        const sock = via ? await forward(via, hop, chain.at(-2)!, target.timeoutMs) : undefined;
        const { client } = await this.open(hop, target, sock, label);
        // A lost jump connection is opened again by the next host that needs it.
        client.on('close', () => this.jumps.get(key) === p && this.jumps.delete(key));
        return client;
      })();
      this.jumps.set(key, p);
      // Hosts waiting on a failed jump host all fail with its reason; a later connection tries again.
      p.catch(() => this.jumps.get(key) === p && this.jumps.delete(key));
    }
    return p;
  }

  /** One SSH connection to `hop` (over `sock` when through a jump host); `role` prefixes errors with the hop. */
  private async open(
    hop: Hop,
    target: ConnectTarget,
    sock: Duplex | undefined,
    role: string | undefined,
  ): Promise<Opened> {
    const knownHostsPath = expandHome(hop.knownHosts);
    const fail = (e: TransportError) => (role ? new TransportError(e.kind, `${role}: ${e.message}`, role) : e);
    // Resolution refuses these already (reach.ts); nothing else is ever connected to or recorded.
    if (!isLiteralHost(hop.host) || !isPort(hop.port))
      throw fail(new TransportError('unreachable', `"${hop.host}" port ${hop.port} is not a host name or address`));
    let entries: ReturnType<typeof readKnownHosts>;
    try {
      entries = this.loadKnownHosts(knownHostsPath);
    } catch (err) {
      throw fail(new TransportError('unreachable', (err as Error).message));
    }
    const auth = authMethods(hop, process.env.SSH_AUTH_SOCK || undefined, this.identities);
    if (auth.methods.length === 0) {
      const why = auth.problems.join('; ') || 'no identity file found and no ssh-agent';
      throw fail(new TransportError('auth-failed', `no usable key for ${hopLabel(hop)}: ${why}`));
    }
    // Ask for a key type known_hosts has for this host, as OpenSSH does; an RSA key only with rsa-sha2-*
    // signatures (ssh-rsa signatures are SHA-1).
    const known = knownKeyTypes(entries, hop.host, hop.port)
      .flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256'] : [t]))
      .filter((t) => HOST_KEY_ALGORITHMS.includes(t));
    const asked = known.length > 0 ? known : HOST_KEY_ALGORITHMS;
    let verdict: 'match' | 'mismatch' | 'unknown' | 'accepted' = 'unknown';
    let presented = '';
    let offered = '';
    let refused: Error | undefined;
    let tried = 'none';
    const client = new Client();
    try {
      await new Promise<void>((resolve, reject) => {
        // Registered for the client's whole life: an ssh2 'error' with no listener would crash the run.
        client.on('error', (err) => reject(err));
        client.on('close', () => reject(new Error('connection closed during the SSH handshake')));
        client.on('ready', () => resolve());
        const queue = [...auth.methods];
        client.connect({
          host: sock ? undefined : hop.host,
          port: sock ? undefined : hop.port,
          sock,
          username: hop.user,
          readyTimeout: target.timeoutMs,
          keepaliveInterval: this.keepalive.keepaliveMs,
          keepaliveCountMax: this.keepalive.keepaliveCount,
          authHandler: (_left, _partial, next) => {
            const m = queue.shift();
            if (!m) return next(false as never);
            tried = m.label;
            next(m.method);
          },
          algorithms: { serverHostKey: asked as never },
          // The server's host key algorithms, for the message when none is acceptable.
          debug: (line: string) => {
            if (line.startsWith(REMOTE_HOST_KEYS)) offered = line.slice(REMOTE_HOST_KEYS.length);
          },
          hostVerifier: (key: Buffer) => {
            presented = fingerprint(key);
            verdict = verifyHostKey(entries, hop.host, hop.port, key);
            if (verdict === 'unknown' && target.acceptNew) {
              try {
                recordHostKey(knownHostsPath, hop.host, hop.port, key);
              } catch (err) {
                refused = err as Error;
                return false;
              }
              this.knownHosts.delete(knownHostsPath);
              verdict = 'accepted';
              this.onAccepted({
                name: knownHostsName(hop.host, hop.port),
                keyType: keyTypeOf(key),
                fingerprint: presented,
                knownHosts: knownHostsPath,
              });
            }
            return verdict === 'match' || verdict === 'accepted';
          },
        });
      });
    } catch (err) {
      client.end();
      client.destroy();
      if (refused) throw fail(new TransportError('host-key-unknown', refused.message));
      const offer = { offered: offered.split(',').filter(Boolean), asked };
      throw fail(classify(err as Error, verdict, presented, hop, knownHostsPath, auth.problems, offer));
    }
    // Small request/response exchanges: without this, Nagle and delayed ACKs add ~40 ms stalls.
    (client as unknown as { _sock?: { setNoDelay?: (v: boolean) => void } })._sock?.setNoDelay?.(true);
    return { client, auth: tried };
  }
}

/** The key type named in an SSH wire-format public key (its first string). */
function keyTypeOf(key: Buffer): string {
  const n = key.length >= 4 ? key.readUInt32BE(0) : 0;
  return n > 0 && n <= key.length - 4 ? key.subarray(4, 4 + n).toString('latin1') : 'unknown';
}

/** A TCP connection from a jump host to the next hop, as a stream (one channel of the shared connection). */
function forward(via: Client, to: Hop, jump: Hop, timeoutMs: number): Promise<Duplex> {
  const hopName = `jump host ${hopLabel(jump)}`;
  return new Promise((resolve, reject) => {
    // A dropped SYN would keep the jump host trying for minutes: bound it like a direct connection.
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new TransportError('timeout', `${hopName} timed out connecting to ${hopLabel(to)}`, hopName));
    }, timeoutMs);
    try {
      via.forwardOut('127.0.0.1', 0, to.host, to.port, (err, stream) => {
        clearTimeout(timer);
        if (late) return stream?.close();
        if (err)
          return reject(
            new TransportError(
              'unreachable',
              `${hopName} could not connect to ${hopLabel(to)}: ${err.message}`,
              hopName,
            ),
          );
        resolve(stream);
      });
    } catch (err) {
      clearTimeout(timer);
      reject(new TransportError('unreachable', `${hopName} connection lost: ${(err as Error).message}`, hopName));
    }
  });
}

interface Opened {
  readonly client: Client;
  /** What authenticated: an identity file or the agent. */
  readonly auth: string;
}

interface AuthPlan {
  readonly methods: { readonly method: AnyAuthMethod; readonly label: string }[];
  /** Identities that cannot be used, and why. */
  readonly problems: string[];
}

/** An identity file as read and parsed: the key (or why not) and its `.pub`, if any. */
interface Identity {
  readonly key: ReturnType<typeof utils.parseKey>;
  readonly pub?: ReturnType<typeof utils.parseKey>;
}

const IDENTITY_MAX_BYTES = 1024 * 1024;

/** Identity files by path, read and parsed once (per transport, so per run). */
export type IdentityCache = Map<string, Identity | undefined>;

function readIdentity(path: string, cache: IdentityCache | undefined): Identity | undefined {
  if (cache?.has(path)) return cache.get(path);
  // Bounded: an identity path may name anything (/dev/zero); a key file is a few KB.
  const read = (p: string) => {
    try {
      return utils.parseKey(readBounded(p, IDENTITY_MAX_BYTES, 'identity file'));
    } catch (err) {
      return err as Error;
    }
  };
  const id = existsSync(path)
    ? { key: read(path), pub: existsSync(`${path}.pub`) ? read(`${path}.pub`) : undefined }
    : undefined;
  cache?.set(path, id);
  return id;
}

/**
 * As OpenSSH: agent keys first (only those matching an identity file with IdentitiesOnly), then each
 * identity file. An encrypted key is only usable through the agent: no passphrase prompt in a parallel run.
 */
export function authMethods(hop: Hop, agentSock: string | undefined, cache?: IdentityCache): AuthPlan {
  const problems: string[] = [];
  const files: { method: AnyAuthMethod; label: string }[] = [];
  const publics: Buffer[] = [];
  for (const id of hop.identities) {
    const read = readIdentity(expandHome(id), cache);
    if (!read) continue;
    const { key, pub } = read;
    if (pub && !(pub instanceof Error)) publics.push(pub.getPublicSSH());
    if (key instanceof Error) {
      if (/encrypt|passphrase/i.test(key.message)) {
        problems.push(
          agentSock
            ? `${id} is encrypted: used only through the agent`
            : `${id} is encrypted and no ssh-agent is running (SSH_AUTH_SOCK is unset): run ssh-agent and ssh-add ${id}`,
        );
      } else problems.push(`${id} is not a private key fwgen can read (${key.message})`);
      continue;
    }
    const parsed = Array.isArray(key) ? (key[0] as ParsedKey) : key;
    publics.push(parsed.getPublicSSH());
    // The parsed key, which ssh2 takes as it is (a fresh method object: ssh2 writes to it).
    files.push({ method: { type: 'publickey', username: hop.user, key: parsed }, label: id });
  }
  if (!agentSock) return { methods: files, problems };
  const agent = hop.identitiesOnly ? new FilteredAgent(agentSock, publics) : agentSock;
  const viaAgent = {
    method: { type: 'agent', username: hop.user, agent } as AnyAuthMethod,
    label: 'ssh-agent (SSH_AUTH_SOCK)',
  };
  return { methods: [viaAgent, ...files], problems };
}

/** The agent's keys that match one of the identity files (IdentitiesOnly). */
export class FilteredAgent extends OpenSSHAgent {
  constructor(
    socketPath: string,
    private readonly allowed: readonly Buffer[],
  ) {
    super(socketPath);
  }

  override getIdentities(cb: Parameters<InstanceType<typeof OpenSSHAgent>['getIdentities']>[0]): void {
    super.getIdentities((err, keys) => {
      if (err || !keys) return cb(err, keys);
      cb(
        undefined,
        keys.filter((k) => this.allowed.some((a) => a.equals((k as ParsedKey).getPublicSSH()))),
      );
    });
  }
}

function classify(
  err: Error,
  verdict: string,
  presented: string,
  hop: Hop,
  knownHostsPath: string,
  problems: readonly string[],
  keys: { readonly offered: readonly string[]; readonly asked: readonly string[] },
): TransportError {
  const where = hopLabel(hop);
  const name = knownHostsName(hop.host, hop.port);
  if (verdict === 'mismatch') {
    return new TransportError(
      'host-key-changed',
      `host key for ${name} does not match ${knownHostsPath} (presented ${presented}); if the host was reinstalled, remove the old key with ssh-keygen -R`,
    );
  }
  if (verdict === 'unknown' && presented) {
    return new TransportError(
      'host-key-unknown',
      `host key for ${name} is not in ${knownHostsPath} (presented ${presented}); verify it and add it, or run with --accept-new`,
    );
  }
  if (err instanceof TransportError) return err;
  const msg = err.message || String(err);
  if (/authentication methods failed|All configured authentication/i.test(msg)) {
    const extra = problems.length > 0 ? `; ${problems.join('; ')}` : '';
    const check = '(check ssh.user, ssh.identity, IdentityFile or the agent)';
    return new TransportError('auth-failed', `authentication failed for ${where} ${check}${extra}`);
  }
  if (/Timed out/i.test(msg)) return new TransportError('timeout', `connection to ${where} timed out`);
  if (/no matching host key format/i.test(msg)) return noHostKeyAlgorithm(where, keys.offered, keys.asked);
  return new TransportError('unreachable', `cannot connect to ${where}: ${msg}`);
}

/** The server offers no host key algorithm fwgen asks for: SHA-1 signatures only, or other key types than known_hosts has. */
function noHostKeyAlgorithm(where: string, offered: readonly string[], asked: readonly string[]): TransportError {
  const list = offered.join(', ') || 'none';
  if (offered.length > 0 && offered.every((a) => a === 'ssh-rsa' || a === 'ssh-dss'))
    return new TransportError(
      'unreachable',
      `${where} offers only ${list} host key signatures (SHA-1), which fwgen refuses as OpenSSH does since 8.8; ` +
        "let the host's sshd offer rsa-sha2-512 or rsa-sha2-256 (HostKeyAlgorithms), or add an ed25519 host key",
    );
  return new TransportError(
    'unreachable',
    `${where} offers host key algorithms ${list}, none of those fwgen asks for (${asked.join(', ')}: ` +
      'the types known_hosts has for it, without SHA-1 ssh-rsa)',
  );
}

class SshSession implements Session {
  private lost: string | undefined;
  private readonly pending = new Set<(e: TransportError) => void>();

  constructor(
    private readonly client: Client,
    private readonly sudo: boolean,
    readonly reached: Reached,
    private readonly limits: StepLimits,
  ) {
    // A network fault (reset, keepalive timeout, half-closed socket) fails the commands in flight.
    const lose = (why: string) => {
      this.lost ??= why;
      for (const reject of this.pending) reject(new TransportError('unreachable', `connection lost: ${this.lost}`));
      this.pending.clear();
    };
    client.on('error', (e: Error) => lose(e.message));
    client.on('end', () => lose('the server closed the connection'));
    client.on('close', () => lose('the connection closed'));
  }

  async run(call: RemoteCall, stdin?: Buffer): Promise<ExecResult> {
    // `sh -c SCRIPT NAME ARGS...`: the values reach the script as $1..$n, never as code.
    const words = [shq(call.script), `fwgen-${call.name}`, ...call.args.map(shq)].join(' ');
    const command = this.sudo ? `sudo -n sh -c ${words}` : `sh -c ${words}`;
    if (this.lost) throw new TransportError('unreachable', `connection lost: ${this.lost}`);
    const result = await this.exec(call, command, stdin);
    const refusal =
      this.sudo && result.code !== 0 ? result.stderr.split('\n').find((l) => SUDO_REFUSED.test(l)) : undefined;
    if (refusal)
      throw new TransportError(
        'sudo-password',
        `sudo -n refused: ${refusal.trim()} (ssh.sudo needs passwordless sudo for this user)`,
      );
    return result;
  }

  /**
   * One command, bounded: past its deadline, or past the output cap, the channel is closed and the step
   * fails (the host's outcome); what came so far is dropped. The connection stays for what follows.
   */
  private exec(call: RemoteCall, command: string, stdin?: Buffer): Promise<ExecResult> {
    const deadlineMs = stepDeadlineMs(call, this.limits);
    return new Promise<ExecResult>((resolve, reject) => {
      let stream: ClientChannel | undefined;
      let settled = false;
      const settle = (err: TransportError | undefined, ok?: ExecResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending.delete(fail);
        if (err) {
          reject(err);
          stream?.close();
        } else resolve(ok!);
      };
      const fail = (e: TransportError) => settle(e);
      this.pending.add(fail);
      const timer = setTimeout(
        () =>
          fail(
            new TransportError(
              'step-timeout',
              `the ${call.name} step did not finish within ${+(deadlineMs / 1000).toFixed(1)} s (--step-timeout); the host is stuck or too slow`,
            ),
          ),
        deadlineMs,
      );
      let bytes = 0;
      const keep = (into: Buffer[]) => (d: Buffer) => {
        if (settled) return;
        bytes += d.length;
        if (bytes <= this.limits.outputBytes) return void into.push(d);
        fail(
          new TransportError(
            'output-limit',
            `the ${call.name} step sent more than ${mebibytes(this.limits.outputBytes)} of output; stopped reading it (a broken or hostile host?)`,
          ),
        );
      };
      try {
        this.client.exec(command, (err: Error | undefined, channel: ClientChannel) => {
          if (err) return fail(new TransportError('unreachable', err.message));
          stream = channel;
          // A step that ran out of time before its channel opened: closed at once.
          if (settled) return void channel.close();
          const out: Buffer[] = [];
          const errOut: Buffer[] = [];
          let exitCode: number | undefined;
          channel.on('data', keep(out));
          channel.stderr.on('data', keep(errOut));
          channel.on('exit', (code: number | null) => {
            if (typeof code === 'number') exitCode = code;
          });
          channel.on('close', () => {
            // No exit status means the connection went away mid-command: that is not a command failure.
            if (exitCode === undefined)
              return fail(new TransportError('unreachable', 'connection lost while a command was running'));
            settle(undefined, {
              code: exitCode,
              stdout: Buffer.concat(out).toString('utf8'),
              stderr: Buffer.concat(errOut).toString('utf8'),
            });
          });
          channel.on('error', (e: Error) => fail(new TransportError('unreachable', e.message)));
          channel.end(stdin ?? undefined);
        });
      } catch (err) {
        fail(new TransportError('unreachable', (err as Error).message));
      }
    });
  }

  close(): void {
    this.client.end();
  }
}

/** How long a step may run: the run's step limit, plus what the step itself may wait on the host. */
export function stepDeadlineMs(call: RemoteCall, limits: StepLimits): number {
  return limits.stepMs + (call.waitS ?? 0) * 1000;
}

function mebibytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / (1024 * 1024))} MiB` : `${bytes} bytes`;
}
