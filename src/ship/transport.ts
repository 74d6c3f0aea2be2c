import type { SshSettings } from '../inventory/model.js';
import type { RemoteCall } from './remote-scripts.js';

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
}

export type TransportFailure = 'unreachable' | 'host-key-unknown' | 'host-key-changed' | 'auth-failed' | 'sudo-password' | 'timeout';

/** An expected connection failure, turned into a host result by the fleet loop. */
export class TransportError extends Error {
  constructor(
    readonly kind: TransportFailure,
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}
