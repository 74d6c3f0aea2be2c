import { LockoutError, UsageError } from '../errors.js';
import type { Inventory } from '../inventory/model.js';
import type { RenderedFile } from '../render/render-role.js';
import { planPublish, roleReleases } from './publish-plan.js';
import { releaseLockoutProblems } from './release-lockout.js';
import { readPublished, writeRelease, type PublishReport } from './publish-tree.js';
import { keyOf, type SignKey } from './sign.js';

/** What one publish starts from: the rendered inventory (already checked against rendered/), and where it goes. */
export interface PublishInput {
  readonly inv: Inventory;
  readonly files: readonly RenderedFile[];
  readonly out: string;
  readonly key: SignKey;
  /** Epoch seconds. */
  readonly now: number;
  /** Inventory commit, `-` outside git. */
  readonly commit: string;
  /** The inventory as rendered headers name it. */
  readonly inventoryLabel: string;
}

/**
 * Publishes a signed release of every role whose rules changed: refuses without `agent:` or
 * management networks, when a role's rules would not admit SSH from the management networks, and
 * when the key is not one the hosts trust. Roles whose rules did not change keep their manifest.
 */
export async function publishRelease(p: PublishInput): Promise<PublishReport> {
  const agent = p.inv.agent;
  if (!agent)
    throw new UsageError(
      `${p.inv.file} has no agent: block`,
      'add agent: { origin: URL, signers: [PUBLIC KEY] } to the inventory (see README, Pull mode)',
    );
  if (p.inv.management.length === 0)
    throw new UsageError(
      `${p.inv.file} has no management networks: hosts that pull their rules could lock everyone out`,
      'list the networks SSH comes from under management:',
    );
  const problems = releaseLockoutProblems(p.inv, p.files);
  if (problems.length > 0)
    throw new LockoutError(
      `refusing to publish: a release would lock the management networks out\n${problems.join('\n')}`,
      'fix the rules (or management:), render and publish again; nothing was published',
    );
  if (!agent.signers.map(keyOf).includes(p.key.publicKey))
    throw new UsageError(
      `the key ${p.key.path} (${p.key.publicKey.slice(0, 40)}...) is not in agent.signers: hosts would refuse its releases`,
      'sign with a key listed in agent.signers, or add its public key there and reinstall the agents',
    );
  const releases = roleReleases(p.inv, p.files);
  const published = readPublished(
    p.out,
    releases.map((r) => r.role),
  );
  const plans = planPublish(releases, published, {
    now: p.now,
    expiresS: agent.expiresS,
    commit: p.commit,
    inventory: p.inventoryLabel,
    preserve: p.inv.preserve,
  });
  return writeRelease(p.out, plans, p.key, agent.signers);
}
