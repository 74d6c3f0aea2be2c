/**
 * How hosts trust a release: the SSHSIG namespace and principal of fwgen's signatures, and the
 * allowed_signers file an agent verifies with (`ssh-keygen -Y verify -n fwgen -I fwgen-release`).
 * Shared by `publish`, which signs and checks, and `agent install`, which installs the file.
 */

/** The SSHSIG namespace of fwgen's releases: a signature made for anything else does not verify. */
export const SIGNATURE_NAMESPACE = 'fwgen';

/** The principal agents' allowed_signers file names every trusted key with. */
export const SIGNER_PRINCIPAL = 'fwgen-release';

/** `type base64` of an OpenSSH public key line. */
export function keyOf(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}

/** The allowed_signers text agents verify with: every trusted key for fwgen's principal and namespace. */
export function allowedSigners(signers: readonly string[]): string {
  return signers.map((s) => `${SIGNER_PRINCIPAL} namespaces="${SIGNATURE_NAMESPACE}" ${keyOf(s)}\n`).join('');
}
