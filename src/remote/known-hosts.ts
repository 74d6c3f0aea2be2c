import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** What known_hosts says about a host's key. */
export type HostKeyVerdict = 'match' | 'mismatch' | 'unknown';

interface Entry {
  patterns: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  key: Buffer;
  revoked: boolean;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Reads an OpenSSH known_hosts file (plain and hashed names, `@revoked`); a missing file is empty. */
export function readKnownHosts(path: string): Entry[] {
  if (!existsSync(path)) return [];
  const out: Entry[] = [];
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0].startsWith('@')) {
      if (fields[0] === '@revoked') revoked = true;
      else continue; // @cert-authority: certificates are not supported; ignore rather than mis-trust.
      fields.shift();
    }
    const [names, keyType, b64] = fields;
    if (!names || !keyType || !b64) continue;
    const entry: Entry = { patterns: [], keyType, key: Buffer.from(b64, 'base64'), revoked };
    if (names.startsWith('|1|')) {
      const [, , salt, hash] = names.split('|');
      entry.hashed = { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
    } else {
      entry.patterns = names.split(',');
    }
    out.push(entry);
  }
  return out;
}

function nameMatches(entry: Entry, name: string): boolean {
  if (entry.hashed) {
    return createHmac('sha1', entry.hashed.salt).update(name).digest().equals(entry.hashed.hash);
  }
  let matched = false;
  for (const p of entry.patterns) {
    const negated = p.startsWith('!');
    if (globMatch(negated ? p.slice(1) : p, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function globMatch(pattern: string, name: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern === name;
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return re.test(name);
}

/** Key types known for a host, so the SSH client can ask the server for one of them. */
export function knownKeyTypes(entries: readonly Entry[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  return [...new Set(entries.filter((e) => !e.revoked && nameMatches(e, name)).map((e) => e.keyType))];
}

/** Checks the key a server presented (SSH wire format) against known_hosts. */
export function verifyHostKey(entries: readonly Entry[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = knownHostsName(host, port);
  const mine = entries.filter((e) => nameMatches(e, name));
  if (mine.some((e) => e.revoked && e.key.equals(key))) return 'mismatch';
  if (mine.some((e) => !e.revoked && e.key.equals(key))) return 'match';
  return mine.some((e) => !e.revoked) ? 'mismatch' : 'unknown';
}

/** Appends a host key (trust on first use, `--accept-new`). */
export function recordHostKey(path: string, host: string, port: number, key: Buffer): void {
  const keyType =
    key.readUInt32BE(0) <= key.length - 4 ? key.subarray(4, 4 + key.readUInt32BE(0)).toString('latin1') : 'ssh-ed25519';
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(path, `${knownHostsName(host, port)} ${keyType} ${key.toString('base64')}\n`, { mode: 0o600 });
}

/** SHA256 fingerprint as OpenSSH prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}
