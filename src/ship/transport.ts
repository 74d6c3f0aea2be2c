import type { SshSettings } from '../inventory/model.js';

/** Result of one remote command. */
export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** An open connection to one host. */
export interface Session {
  /** Runs a POSIX sh script (as root, or under `sudo -n` when configured), feeding `stdin`. */
  run(script: string, stdin?: Buffer): Promise<ExecResult>;
  close(): void;
  /** How the host was reached (alias, jump hosts, key), when the transport knows. */
  readonly route?: string;
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

export type TransportFailure = 'unreachable' | 'host-key-unknown' | 'host-key-changed' | 'auth-failed' | 'sudo-password' | 'timeout';

/** An expected connection failure, turned into a host result by the fleet loop. */
export class TransportError extends Error {
  constructor(
    readonly kind: TransportFailure,
    message: string,
    /** The hop that failed (`jump host root@bastion`), when not the target reached directly. */
    readonly hop?: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}
