import type { Resolver } from '../doctor/name-checks.js';

/**
 * Switches for tests of the internal API, passed by the caller of `runCli`; the shipped entry
 * (main.ts) passes none, and no environment variable can set them.
 */
export interface InternalOptions {
  /** Ship without the lockout check (a test that must reach a host with rules that lock it out). */
  readonly skipLockoutCheck?: boolean;
  /** DNS answers for doctor's name checks (tests never query a real DNS server). */
  readonly resolver?: Resolver;
}
