import { spawn } from 'node:child_process';
import type { RemoteCall } from './scripts.js';
import type { ConnectTarget, ExecResult, Session, Transport } from './transport.js';

/**
 * Runs the host steps on this machine, as `sh -c SCRIPT NAME ARGS...` exactly as the SSH transport
 * runs them on a host, behind an optional command prefix (`ip netns exec NS`, `unshare ...`). For
 * recording the steps' real outputs, and for a host that runs its own steps.
 */
export class LocalTransport implements Transport {
  constructor(
    private readonly prefix: (call: RemoteCall) => readonly string[] = () => [],
    private readonly onRun: (call: RemoteCall, result: ExecResult) => void = () => {},
  ) {}

  async connect(_target: ConnectTarget): Promise<Session> {
    return { run: (call, stdin) => this.run(call, stdin), close: () => {} };
  }

  private run(call: RemoteCall, stdin?: Buffer): Promise<ExecResult> {
    const argv = [...this.prefix(call), 'sh', '-c', call.script, `fwgen-${call.name}`, ...call.args];
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.stdin.on('error', () => undefined);
      child.stdin.end(stdin ?? Buffer.alloc(0));
      child.on('error', reject);
      child.on('close', (code) => {
        const result = {
          code: code ?? -1,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        };
        this.onRun(call, result);
        resolve(result);
      });
    });
  }
}
