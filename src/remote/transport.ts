import type { SshSettings } from '../inventory/model.js';
import type { RemoteCall } from './scripts.js';
import { printable } from '../util/printable.js';

/** Result of one remote command. */
export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** An open connection to one host. */
export interface Session {
  /** Runs a step's script with its arguments (as root, or under `sudo -n` when configured), feeding `stdin`. */
  run(call: RemoteCall, stdin?: Buffer): Promise<ExecResult>;
  close(): void;
  /** How the host was reached, when the transport knows (for doctor). */
  readonly reached?: Reached;
}

/** Where a session ended up and how: the resolved address, the ssh_config alias, jump hosts, the key. */
export interface Reached {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** The name given to ssh when it is an ssh_config alias (a HostName differs). */
  readonly alias?: string;
  /** Jump hosts, `user@host[:port]`, first to last. */
  readonly via: readonly string[];
  /** The key that authenticated: an identity file, or the agent. */
  readonly key: string;
}

/** How to reach a host: the inventory's SSH settings, plus options of this run. */
export interface ConnectTarget {
  readonly name: string;
  readonly ssh: SshSettings;
  readonly acceptNew: boolean;
  readonly timeoutMs: number;
}

/** The one seam between fleet logic and the network: the real one speaks SSH, tests use a fake. */
export interface Transport {
  /** Opens a new connection; rejects with a TransportError when it cannot. */
  connect(target: ConnectTarget): Promise<Session>;
  /** Ends what the transport shares between connections (jump host connections) at the end of a run. */
  close?(): void;
}

/** Why a host could not be reached, or (`step-timeout`, `output-limit`) why a step on it was given up. */
export type TransportFailure =
  | 'unreachable'
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'auth-failed'
  | 'sudo-password'
  | 'timeout'
  | 'step-timeout'
  | 'output-limit';

/**
 * An expected connection failure, turned into a host result by the fleet loop. Its message may quote
 * what a server sent: control characters are escaped.
 */
export class TransportError extends Error {
  /** The hop that failed (`jump host root@bastion`), when not the target reached directly. */
  readonly hop?: string;

  constructor(
    readonly kind: TransportFailure,
    message: string,
    hop?: string,
  ) {
    super(printable(message));
    if (hop !== undefined) this.hop = printable(hop);
    this.name = 'TransportError';
  }
}
