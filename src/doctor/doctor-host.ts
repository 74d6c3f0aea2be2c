import type { Host, Inventory } from '../inventory/model.js';
import type { Reach } from '../remote/reach.js';
import { lastErrorLine, parseStatus, type RemotePaths } from '../remote/scripts.js';
import { TransportError, type Session, type Transport } from '../remote/transport.js';
import { evaluateFacts, type Check } from './checks.js';
import { connectedChecks, transportFailureChecks } from './connection-checks.js';
import { factsCall, parseFacts, TOOLS } from '../remote/facts.js';
import { nameChecks, type Resolver } from './name-checks.js';

/** What checking hosts needs: the network behind two seams, and the run's settings. */
export interface DoctorDeps {
  readonly transport: Transport;
  readonly resolver: Resolver;
  readonly connectTimeoutMs: number;
  /** How each host is reached (ssh_config, jump hosts), by host name. */
  readonly reaches?: ReadonlyMap<string, Reach>;
}

/** Checks one host: names from here, then one SSH connection running one read-only script. */
export async function doctorHost(host: Host, inv: Inventory, paths: RemotePaths, deps: DoctorDeps): Promise<Check[]> {
  const [names, remote] = await Promise.all([
    nameChecks(host, deps.resolver, deps.reaches?.get(host.name)),
    remoteChecks(host, inv, paths, deps),
  ]);
  // A name that does not resolve explains a failed connection, so it goes first; PTR (a warning at most) last.
  return [...names.filter((c) => c.name !== 'PTR'), ...remote, ...names.filter((c) => c.name === 'PTR')];
}

async function remoteChecks(host: Host, inv: Inventory, paths: RemotePaths, deps: DoctorDeps): Promise<Check[]> {
  let session: Session;
  try {
    session = await deps.transport.connect({
      name: host.name,
      ssh: host.ssh,
      acceptNew: false,
      timeoutMs: deps.connectTimeoutMs,
    });
  } catch (err) {
    return failure(host, err);
  }
  try {
    const r = await session.run(factsCall(paths, TOOLS));
    if (parseStatus(r.stdout).status !== 'facts') {
      const why = lastErrorLine(r.stderr) ?? `exit ${r.code}`;
      return [
        ...connectedChecks(host, session.reached),
        {
          host: host.name,
          name: 'facts',
          level: 'fail',
          detail: `the checking script failed on the host: ${why}`,
          fix: 'the host needs a POSIX sh, coreutils and iproute2',
        },
      ];
    }
    return [
      ...connectedChecks(host, session.reached),
      ...evaluateFacts(parseFacts(r.stdout), {
        host,
        inventory: inv,
        paths,
        forward: inv.roles?.find((x) => x.name === host.role)?.forward,
      }),
    ];
  } catch (err) {
    return failure(host, err);
  } finally {
    session.close();
  }
}

function failure(host: Host, err: unknown): Check[] {
  if (err instanceof TransportError) return transportFailureChecks(host, err);
  return [
    {
      host: host.name,
      name: 'ssh',
      level: 'fail',
      detail: `connection lost: ${(err as Error)?.message ?? String(err)}`,
      fix: 'run doctor again; if it persists, check the host',
    },
  ];
}

/** Checks hosts in parallel, at most `concurrency` at once; results in the hosts' order. */
export async function doctorFleet(
  hosts: readonly Host[],
  inv: Inventory,
  paths: RemotePaths,
  deps: DoctorDeps,
  concurrency: number,
): Promise<Check[][]> {
  const results: Check[][] = new Array(hosts.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < hosts.length) {
      const i = next++;
      results[i] = await doctorHost(hosts[i], inv, paths, deps);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, hosts.length)) }, worker));
  return results;
}
