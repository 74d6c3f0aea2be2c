import type { Inventory } from '../inventory/model.js';
import { checkSsh, describeVerdict } from '../lockout/lockout.js';
import type { RenderedFile } from '../render/render-role.js';

/**
 * A release goes out with no operator connected to see it fail, so each role's rules must admit SSH
 * from every management network, on every SSH port of the role's hosts, for the new connection, the
 * client's packets and the replies (the same walk as ship's check). Returns one problem per refusal.
 */
export function releaseLockoutProblems(
  inv: Pick<Inventory, 'roles' | 'management'>,
  files: readonly RenderedFile[],
): string[] {
  const problems: string[] = [];
  for (const f of files) {
    if (!f.role || !f.ruleset || !f.family) continue;
    const role = inv.roles.find((r) => r.name === f.role);
    const ports = [...new Set(role?.hosts.map((h) => h.ssh.port) ?? [])].sort((a, b) => a - b);
    const sets = new Map((f.ruleset.sets ?? []).map((s) => [s.name, s.members]));
    for (const net of inv.management.filter((n) => n.family === f.family)) {
      const source = net.cidr.slice(0, net.cidr.lastIndexOf('/'));
      for (const dport of ports) {
        const verdict = checkSsh(f.ruleset, { source, dport, sets });
        if (!verdict.admitted)
          problems.push(
            `role ${f.role} (${f.path}): does not admit SSH from management network ${net.cidr} to port ${dport} (decided by ${describeVerdict(verdict)})`,
          );
      }
    }
  }
  return problems;
}
