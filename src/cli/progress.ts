import type { RemoteCall } from '../remote/scripts.js';
import type { ConnectTarget, Session, Transport } from '../remote/transport.js';

/** What one host is waiting for, since when, and until when if known (ms, the clock of `now`). */
interface Wait {
  readonly what: string;
  readonly since: number;
  readonly until?: number;
}

export interface WaitProgressOptions {
  readonly write: (line: string) => void;
  readonly now: () => number;
  /** Off with --json, or when stderr is not a terminal (as npm does): nothing is ever written. */
  readonly enabled: boolean;
  /** At most one line this often. */
  readonly everyMs?: number;
  /** A wait shorter than this is not worth a line. */
  readonly afterMs?: number;
}

/** How a remote step reads in a progress line. */
const STEP_WORDS: Readonly<Record<RemoteCall['name'], string>> = {
  read: 'reading',
  apply: 'applying',
  commit: 'confirming',
  verify: 'checking the rollback',
  backups: 'listing backups',
  'doctor-facts': 'checking',
  'boot-hook': 'boot hook',
  'boot-remove': 'removing the boot hook',
  'agent-install': 'installing the agent',
  'agent-poll': 'polling',
};

/**
 * Progress on long waits: which hosts have been waiting a while, and for what (a connection, a command,
 * the dead-man switch). One line at most every few seconds, on stderr, only on a terminal.
 */
export class WaitProgress {
  private readonly waits = new Map<string, Wait>();
  private lastLine = -Infinity;
  private readonly everyMs: number;
  private readonly afterMs: number;

  constructor(private readonly o: WaitProgressOptions) {
    this.everyMs = o.everyMs ?? 5000;
    this.afterMs = o.afterMs ?? 3000;
  }

  /** `host` starts waiting for `what` (until `untilMs`, when known). */
  start(host: string, what: string, untilMs?: number): void {
    this.waits.set(host, { what, since: this.o.now(), ...(untilMs === undefined ? {} : { until: untilMs }) });
  }

  /** `host` is done waiting. */
  end(host: string): void {
    this.waits.delete(host);
  }

  /** Writes a line when some host has waited long enough and the last line is old enough. */
  tick(): void {
    if (!this.o.enabled) return;
    const now = this.o.now();
    if (now - this.lastLine < this.everyMs) return;
    const line = this.line(now);
    if (line === undefined) return;
    this.lastLine = now;
    this.o.write(`${line}\n`);
  }

  /** Pure on the current waits: the line for `now`, or undefined when no wait is long yet. */
  line(now: number): string | undefined {
    const long = [...this.waits.entries()]
      .filter(([, w]) => now - w.since >= this.afterMs)
      .sort(([, a], [, b]) => a.since - b.since);
    if (long.length === 0) return undefined;
    const secs = (ms: number) => `${Math.max(0, Math.round(ms / 1000))}s`;
    const shown = long.slice(0, 4).map(([host, w]) => {
      const left = w.until === undefined ? `${secs(now - w.since)}` : `${secs(w.until - now)} left`;
      return `${host} (${w.what}, ${left})`;
    });
    const more = long.length > shown.length ? `, and ${long.length - shown.length} more` : '';
    return `... waiting on ${long.length} host(s): ${shown.join(', ')}${more}`;
  }

  /** Ticks every second until the returned function is called (the timer never keeps the process alive). */
  run(): () => void {
    if (!this.o.enabled) return () => {};
    const timer = setInterval(() => this.tick(), 1000);
    timer.unref();
    return () => clearInterval(timer);
  }
}

/** The transport, reporting each connection and command to `progress` while it is pending. */
export function watchTransport(transport: Transport, progress: WaitProgress): Transport {
  return {
    async connect(target: ConnectTarget): Promise<Session> {
      progress.start(target.name, 'connecting');
      let session: Session;
      try {
        session = await transport.connect(target);
      } finally {
        progress.end(target.name);
      }
      return {
        reached: session.reached,
        close: () => session.close(),
        async run(call, stdin) {
          progress.start(target.name, STEP_WORDS[call.name] ?? call.name);
          try {
            return await session.run(call, stdin);
          } finally {
            progress.end(target.name);
          }
        },
      };
    },
    close: () => transport.close?.(),
  };
}

/** Progress for a command's run: on stderr, only on a terminal and without --json. */
export function waitProgress(json: boolean | undefined): WaitProgress {
  return new WaitProgress({
    write: (line) => process.stderr.write(line),
    now: () => Date.now(),
    enabled: !json && process.stderr.isTTY === true,
  });
}
