// Generates a large inventory for benchmarks: N hosts in R roles, addresses scattered over 198.18.0.0/15.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Deterministic PRNG so every run measures the same inventory. */
function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function generateInventory(
  path,
  {
    hosts = 10000,
    roles = 200,
    seed = 42,
    sets = 'none',
    signer,
    origin = 'https://fw.example.net/fleet/',
    extraHosts = 0,
  } = {},
) {
  const rand = mulberry32(seed);
  const used = new Set();
  const address = () => {
    for (;;) {
      const n = Math.floor(rand() * 131072); // 198.18.0.0/15
      if (n % 256 === 0 || n % 256 === 255 || used.has(n)) continue;
      used.add(n);
      return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
    }
  };
  const lines = [
    'defaults:',
    '  interface: eth1',
    'management:',
    '  - 203.0.113.0/28',
    'trust: fleet',
    ...(sets === 'none' ? [] : [`sets: ${sets}`]),
    // Pull mode (bench/publish-bench.mjs): the public key that signs releases.
    ...(signer ? ['agent:', `  origin: ${origin}`, `  signers: ["${signer}"]`] : []),
    'roles:',
  ];
  const perRole = Math.ceil(hosts / roles);
  let h = 0;
  for (let r = 0; r < roles; r++) {
    lines.push(`  role${r}:`);
    if (r % 10 === 0) lines.push('    public: true');
    if (r % 3 === 0)
      lines.push(
        `    allow:`,
        `      - { from: [role${(r + 1) % roles}, role${(r + 7) % roles}], ports: [tcp/${5000 + r}] }`,
        `      - { from: [192.0.2.0/24], ports: [udp/161] }`,
      );
    lines.push('    hosts:');
    for (let i = 0; i < perRole && h < hosts; i++, h++) lines.push(`      h${h}: ${address()}`);
  }
  // Hosts added after a first run, in a role of their own (with fleet trust every role's rules change).
  if (extraHosts > 0) lines.push('  added:', '    hosts:');
  for (let i = 0; i < extraHosts; i++) lines.push(`      added${i}: ${address()}`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${lines.join('\n')}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  generateInventory(process.argv[2] ?? 'bench/out/inventory/inventory.yaml');
}
