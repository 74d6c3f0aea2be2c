import { isIP } from 'node:net';

/**
 * A literal host: a DNS name (letters, digits and hyphens in dot-separated labels, not all digits) or
 * an IP address, as the inventory's `ssh.host` must be. The only names fwgen connects to, and the only
 * ones it writes to known_hosts: never a pattern (`*`), a list, a marker or an authorized_keys option.
 */
export function isLiteralHost(s: string): boolean {
  if (!s.includes('%') && isIP(s) !== 0) return true;
  if (s.length > 253 || /^[0-9.]+$/.test(s)) return false;
  return s.split('.').every((label) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label));
}

/** A TCP port: a whole number 1..65535. */
export function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}
