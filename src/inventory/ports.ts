import type { PortSpec, Proto } from './model.js';

const PORT_RE = /^(tcp|udp)\/([0-9]{1,5})(?:-([0-9]{1,5}))?$/;

/** Parses `tcp/N`, `udp/N` or a range `tcp/N-M`, `udp/N-M`, or returns why it is not one. */
export function parsePort(text: string): PortSpec | { error: string } {
  const m = PORT_RE.exec(text);
  if (!m) return { error: `"${text}" is not a port (expected tcp/N, udp/N, or a range tcp/N-M or udp/N-M)` };
  const proto = m[1] as Proto;
  const from = Number(m[2]);
  const to = m[3] === undefined ? from : Number(m[3]);
  for (const n of [from, to]) {
    if (n < 1 || n > 65535) return { error: `port ${n} in "${text}" is out of range (expected 1..65535)` };
  }
  if (to < from) return { error: `"${text}" is a reversed range (expected N-M with N <= M)` };
  const dport = from === to ? `${from}` : `${from}:${to}`;
  return { proto, from, to, dport, text: from === to ? `${proto}/${from}` : `${proto}/${from}-${to}` };
}

/** Sorts ports (tcp before udp, then numerically) and removes duplicates. */
export function sortPorts(ports: Iterable<PortSpec>): PortSpec[] {
  const byText = new Map<string, PortSpec>();
  for (const p of ports) byText.set(p.text, p);
  return [...byText.values()].sort((a, b) =>
    a.proto !== b.proto ? (a.proto < b.proto ? -1 : 1) : a.from - b.from || a.to - b.to,
  );
}
