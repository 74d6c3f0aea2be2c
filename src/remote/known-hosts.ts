import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ConfigError } from '../errors.js';
import { globMatch } from '../util/glob.js';
import { BoundedReadError, readBounded } from '../util/read-bounded.js';
import { isLiteralHost, isPort } from './host-name.js';

/** What known_hosts says about a host's key. */
export type HostKeyVerdict = 'match' | 'mismatch' | 'unknown';

interface Entry {
  patterns: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  key: Buffer;
  revoked: boolean;
}

/** A known_hosts file larger than this is refused (OpenSSH's own files hold a few KB per hundred hosts). */
export const KNOWN_HOSTS_MAX_BYTES = 16 * 1024 * 1024;

/** Key types a known_hosts line may name (OpenSSH's, certificates and security keys included). */
const KEY_TYPE =
  /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)(-cert-v01@openssh\.com)?$/;

/**
 * Host patterns as known_hosts holds them: names, `*?!`, `[host]:port` (no quote, no `=`, which
 * authorized_keys options have: `command="..."`), comma-separated; or a hashed `|1|salt|hash`.
 */
const HOST_PATTERNS = /^([^\s"'=|]+|\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+)$/;

/**
 * authorized_keys options without a value: a line `restrict ssh-ed25519 KEY` is both a valid known_hosts
 * line and a login grant, so fwgen never records a host by such a name on port 22.
 */
const KEY_OPTIONS = new Set([
  'agent-forwarding',
  'cert-authority',
  'no-agent-forwarding',
  'no-port-forwarding',
  'no-pty',
  'no-touch-required',
  'no-user-rc',
  'no-x11-forwarding',
  'port-forwarding',
  'pty',
  'restrict',
  'user-rc',
  'verify-required',
  'x11-forwarding',
]);

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/**
 * Reads an OpenSSH known_hosts file (plain and hashed names, `@revoked`); a missing file is empty.
 * Refuses (ConfigError) what is not a known_hosts file: an authorized_keys file (by name, or by a line
 * that is not a known_hosts entry), a device such as /dev/zero, a file over 16 MiB.
 */
export function readKnownHosts(path: string): Entry[] {
  if (!existsSync(path)) return [];
  refuseAuthorizedKeys(path);
  let text: string;
  try {
    text = readBounded(path, KNOWN_HOSTS_MAX_BYTES, 'known_hosts file').toString('utf8');
  } catch (err) {
    if (err instanceof BoundedReadError)
      throw new ConfigError(`${err.message} (ssh.known_hosts names a known_hosts file)`);
    throw new ConfigError(`cannot read known_hosts file ${path}: ${(err as Error).message}`);
  }
  const out: Entry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const entry = parseEntry(line);
    if (!entry) {
      throw new ConfigError(
        `${path}:${i + 1}: not a known_hosts entry (expected "HOST[,HOST...] KEY-TYPE BASE64-KEY"); ` +
          'ssh.known_hosts must name a known_hosts file, and fwgen writes to it',
      );
    }
    if (entry !== 'ignored') out.push(entry);
  });
  return out;
}

function parseEntry(line: string): Entry | 'ignored' | undefined {
  const fields = line.split(/\s+/);
  let revoked = false;
  if (fields[0].startsWith('@')) {
    if (fields[0] === '@revoked') revoked = true;
    else if (fields[0] !== '@cert-authority') return undefined;
    fields.shift();
  }
  const [names, keyType, b64] = fields;
  if (!names || !keyType || !b64 || !HOST_PATTERNS.test(names) || !KEY_TYPE.test(keyType)) return undefined;
  const key = Buffer.from(b64, 'base64');
  if (blobType(key) !== keyType) return undefined;
  if (names.split(',').every((n) => KEY_OPTIONS.has(n.toLowerCase()))) return undefined;
  // @cert-authority: certificates are not supported; ignored rather than mis-trusted.
  if (line.startsWith('@cert-authority')) return 'ignored';
  const entry: Entry = { patterns: [], keyType, key, revoked };
  if (names.startsWith('|1|')) {
    const [, , salt, hash] = names.split('|');
    entry.hashed = { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
  } else {
    entry.patterns = names.split(',');
  }
  return entry;
}

/** The type a key blob (SSH wire format) names first, if it is well formed. */
function blobType(key: Buffer): string | undefined {
  if (key.length < 4) return undefined;
  const n = key.readUInt32BE(0);
  return n > 0 && n <= key.length - 4 ? key.subarray(4, 4 + n).toString('latin1') : undefined;
}

/** authorized_keys (by its own name or where a symlink leads) is never read or written as known_hosts. */
function refuseAuthorizedKeys(path: string): void {
  let real = path;
  try {
    real = realpathSync(path);
  } catch {
    // Not there yet: its own name is what it will be.
  }
  for (const p of [path, real]) {
    if (/^authorized_keys/.test(basename(p)))
      throw new ConfigError(`${path} is an authorized_keys file, not a known_hosts file (ssh.known_hosts)`);
  }
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

/**
 * Appends a host key (trust on first use, `--accept-new`). Only a literal host (a DNS name or an IP
 * address, never a pattern) or `[host]:port` is written, and never to an authorized_keys file; the
 * file's existing lines must be known_hosts entries.
 */
export function recordHostKey(path: string, host: string, port: number, key: Buffer): void {
  if (!isLiteralHost(host) || !isPort(port) || (port === 22 && KEY_OPTIONS.has(host.toLowerCase())))
    throw new ConfigError(`refusing to record a host key for "${host}" port ${port}: not a host name or address`);
  const keyType = blobType(key);
  if (keyType === undefined || !KEY_TYPE.test(keyType))
    throw new ConfigError(`refusing to record a host key for ${host}: not an SSH public key`);
  readKnownHosts(path);
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(path, `${knownHostsName(host, port)} ${keyType} ${key.toString('base64')}\n`, { mode: 0o600 });
}

/** SHA256 fingerprint as OpenSSH prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}
