import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError, WorkFailedError } from '../errors.js';
import { allowedSigners, keyOf, SIGNATURE_NAMESPACE, SIGNER_PRINCIPAL } from '../remote/release-trust.js';

export { allowedSigners, keyOf, SIGNATURE_NAMESPACE, SIGNER_PRINCIPAL } from '../remote/release-trust.js';

/** A signing key: an OpenSSH private key file, or a public key whose private half ssh-agent holds. */
export interface SignKey {
  readonly path: string;
  /** `type base64` of the key (no comment): compared with `agent.signers`. */
  readonly publicKey: string;
  readonly viaAgent: boolean;
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function sshKeygen(args: readonly string[], input?: Buffer): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh-keygen', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (err) =>
      reject(new WorkFailedError(`cannot run ssh-keygen: ${err.message}`, 'install OpenSSH (8.1 or later)')),
    );
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

const KEY_LINE = /^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa|sk-[a-z0-9-]+@openssh\.com) [A-Za-z0-9+/]+={0,2}(\s|$)/;

/**
 * Reads `--sign-key`: a public key means ssh-agent holds the private half (ssh-keygen asks it); a
 * private key file is used directly, its public key read from PATH.pub or derived by ssh-keygen.
 */
export async function loadSignKey(path: string): Promise<SignKey> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --sign-key ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (KEY_LINE.test(text.trim())) return { path, publicKey: keyOf(text), viaAgent: true };
  if (!/-----BEGIN OPENSSH PRIVATE KEY-----/.test(text))
    throw new UsageError(
      `--sign-key ${path} is neither an OpenSSH private key nor a public key`,
      'pass a key made by ssh-keygen -t ed25519, or its .pub file when ssh-agent holds the key',
    );
  if (existsSync(`${path}.pub`))
    return { path, publicKey: keyOf(readFileSync(`${path}.pub`, 'utf8')), viaAgent: false };
  const r = await sshKeygen(['-y', '-P', '', '-f', path]);
  if (r.code !== 0)
    throw new UsageError(
      `cannot read the public key of ${path}: ${r.stderr.trim()}`,
      'put the public key beside it as PATH.pub, or load the key into ssh-agent and pass the .pub file',
    );
  return { path, publicKey: keyOf(r.stdout), viaAgent: false };
}

/** Signs each file with `ssh-keygen -Y sign` (one process for all), writing FILE.sig beside it. */
export async function signFiles(key: SignKey, files: readonly string[]): Promise<void> {
  if (files.length === 0) return;
  const r = await sshKeygen(['-q', '-Y', 'sign', '-n', SIGNATURE_NAMESPACE, '-f', key.path, ...files]);
  if (r.code !== 0 || files.some((f) => !existsSync(`${f}.sig`))) {
    throw new WorkFailedError(
      `ssh-keygen -Y sign failed: ${r.stderr.trim() || `exit ${r.code}`}`,
      key.viaAgent
        ? 'is the key loaded into ssh-agent (ssh-add -l) and SSH_AUTH_SOCK set?'
        : 'a private key file must be readable by you alone (chmod 600) and have no passphrase; else use ssh-agent',
    );
  }
}

/** Verifies a signature as agents do (`ssh-keygen -Y verify`); returns why not, or undefined. */
export async function verifySignature(
  data: Buffer,
  signature: string,
  signers: readonly string[],
): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'fwgen-verify-'));
  try {
    writeFileSync(join(dir, 'allowed_signers'), allowedSigners(signers));
    writeFileSync(join(dir, 'sig'), signature);
    const r = await sshKeygen(
      [
        '-Y',
        'verify',
        '-f',
        join(dir, 'allowed_signers'),
        '-I',
        SIGNER_PRINCIPAL,
        '-n',
        SIGNATURE_NAMESPACE,
        '-s',
        join(dir, 'sig'),
      ],
      data,
    );
    return r.code === 0 ? undefined : r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
