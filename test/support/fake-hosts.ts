import type { Host } from '../../src/inventory/model.js';
import type { RemoteCall } from '../../src/remote/scripts.js';
import {
  TransportError,
  type ConnectTarget,
  type ExecResult,
  type Session,
  type Transport,
} from '../../src/remote/transport.js';
import type { ShipJob } from '../../src/ship/jobs.js';
import type { Effects, RunSettings } from '../../src/ship/ship-host.js';

// Scripted hosts for the fleet logic: a fake transport answering each remote step by its name.

/** A scripted host: answers each remote step by its name. */
export interface FakeHost {
  connects: number;
  refuseFrom?: number; // connection number from which connects fail
  read?: ExecResult;
  apply?: ExecResult;
  commit?: ExecResult;
  verify?: ExecResult;
  /** The boot-hook step's answer (default: it installed fwgen's hook). */
  boot?: ExecResult;
  scripts: string[];
  stdin: (Buffer | undefined)[];
}

export const ok = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: '' });

export class FakeTransport implements Transport {
  constructor(readonly hosts: Record<string, FakeHost>) {}
  async connect(t: ConnectTarget): Promise<Session> {
    const h = this.hosts[t.name];
    h.connects++;
    if (h.refuseFrom !== undefined && h.connects >= h.refuseFrom)
      throw new TransportError('unreachable', `connect ECONNREFUSED ${t.ssh.host}:22`);
    return {
      run: async (call: RemoteCall, stdin?: Buffer) => {
        h.scripts.push(call.name);
        h.stdin.push(stdin);
        if (call.name === 'read') return h.read ?? readOutput({});
        if (call.name === 'apply') return h.apply ?? ok('status=applied backup=20261121T000000Z\n');
        if (call.name === 'commit') return h.commit ?? ok('status=committed\n');
        if (call.name === 'verify') return h.verify ?? ok('status=rolled-back\n');
        if (call.name === 'boot-hook') return h.boot ?? ok(`${BOOT_LINE}\nstatus=installed\n`);
        return ok('');
      },
      close: () => {},
    };
  }
}

/** The `boot=` line of fwgen's hook, as remote/boot-hook.sh prints it once installed. */
export const BOOT_LINE = 'boot=if-pre-up.d 1 ok /etc/network/if-pre-up.d/fwgen-iptables';

/** What remote/read.sh prints: sections (byte count, bytes) then the status line. */
export function readOutput(o: {
  file4?: string;
  live4?: string;
  liveSets?: string;
  setsFile?: string;
  /** The boot-hook step's marker the host holds. */
  boot?: string;
}): ExecResult {
  const section = (t?: string) => (t === undefined ? '-1\n' : `${Buffer.byteLength(t)}\n${t}`);
  const sets = o.liveSets !== undefined ? `${section(o.liveSets)}${section(o.setsFile)}` : '';
  const ipset = o.liveSets !== undefined ? ' ipset=1' : '';
  const boot = o.boot !== undefined ? ` boot=${o.boot}` : '';
  return ok(
    `${section(undefined)}${section(o.file4)}${section(o.live4 ?? '')}${sets}status=read backups=0 armed=0 locked=0 fp4=abc fp6=-${ipset}${boot}\n`,
  );
}

export const host = (name: string): Host => ({
  name,
  role: 'web',
  addresses: [],
  ssh: { host: `198.18.0.${name.length}`, user: 'root', port: 22, knownHosts: '/dev/null', sudo: false },
});
export const job = (name: string): ShipJob => ({
  kind: 'ship',
  host: host(name),
  paths: { rules: '/etc/iptables.up.rules', rules6: '/etc/ip6tables.up.rules' },
  v4: Buffer.from('*filter\nCOMMIT\n'),
  preserve: () => false,
});
export const settings: RunSettings = {
  id: 'run1',
  owner: 'me',
  timeoutS: 5,
  keep: 10,
  force: false,
  dryRun: false,
  acceptNew: false,
  connectTimeoutMs: 1000,
  stateJson: () => '{}',
};

export function effects(hosts: Record<string, FakeHost>): Effects & { slept: number[] } {
  let clock = 0;
  const slept: number[] = [];
  return {
    transport: new FakeTransport(hosts),
    now: () => clock,
    sleep: async (ms) => void (slept.push(ms), (clock += ms)),
    slept,
  };
}
export const fake = (over: Partial<FakeHost> = {}): FakeHost => ({ connects: 0, scripts: [], stdin: [], ...over });
