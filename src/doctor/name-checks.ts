import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import type { Host } from '../inventory/model.js';
import type { Reach } from '../remote/reach.js';
import type { Check } from './checks.js';

/** Name lookups doctor makes from this machine; injectable so tests never ask a real DNS server. */
export interface Resolver {
  /** Addresses of a name, as the SSH client would find them (getaddrinfo: /etc/hosts, then DNS). */
  lookup(name: string): Promise<string[]>;
  /** PTR names of an address. */
  reverse(address: string): Promise<string[]>;
}

/** The system's resolver; reverse lookups give up after `timeoutMs` (PTR is only ever a warning). */
export function systemResolver(timeoutMs = 2000): Resolver {
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries: 1 });
  return {
    lookup: async (name) => (await dns.lookup(name, { all: true })).map((a) => a.address),
    reverse: (address) => {
      // c-ares' timeout is per server and attempt: bound the whole query too.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(Object.assign(new Error('no answer in time'), { code: 'ETIMEOUT' })),
          timeoutMs + 500,
        );
      });
      return Promise.race([resolver.reverse(address), late]).finally(() => clearTimeout(timer));
    },
  };
}

/** A resolver answering from fixed tables: names to addresses, addresses to PTR names. */
export function staticResolver(table: { names?: Record<string, string[]>; ptr?: Record<string, string[]> }): Resolver {
  const answer = (map: Record<string, string[]> | undefined, key: string) => {
    const found = map?.[key];
    if (!found?.length)
      return Promise.reject(Object.assign(new Error(`queryA ENOTFOUND ${key}`), { code: 'ENOTFOUND' }));
    return Promise.resolve(found);
  };
  return { lookup: (name) => answer(table.names, name), reverse: (address) => answer(table.ptr, address) };
}

/**
 * `ssh.host` resolves (skipped for an address; an ssh_config alias is checked as its HostName, and
 * behind a jump host the jump host resolves it) and every inventory address has a PTR record (warn only).
 */
export async function nameChecks(h: Host, resolver: Resolver, reach?: Reach): Promise<Check[]> {
  const checks: Check[] = [];
  const name = reach?.target.host ?? h.ssh.host;
  if (isIP(name)) {
    // An address: nothing to resolve.
  } else if (reach && reach.jumps.length > 0) {
    checks.push({
      host: h.name,
      name: 'ssh.host resolves',
      level: 'ok',
      detail: `${name} is resolved by the jump host`,
    });
  } else {
    try {
      const found = await resolver.lookup(name);
      checks.push({ host: h.name, name: 'ssh.host resolves', level: 'ok', detail: `${name} → ${found.join(', ')}` });
    } catch (err) {
      checks.push({
        host: h.name,
        name: 'ssh.host resolves',
        level: 'fail',
        detail: `${name} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        fix: `fix its DNS record or /etc/hosts, or set ssh.host of ${h.name} to an address`,
      });
    }
  }
  for (const net of h.addresses) {
    const address = net.cidr.slice(0, net.cidr.indexOf('/'));
    try {
      const names = await resolver.reverse(address);
      checks.push({ host: h.name, name: 'PTR', level: 'ok', detail: `${address} → ${names.join(', ')}` });
    } catch (err) {
      checks.push({
        host: h.name,
        name: 'PTR',
        level: 'warn',
        detail: `no PTR record for ${address} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        fix: `add a PTR record for ${address}, so logs and tools show a name`,
      });
    }
  }
  return checks;
}
