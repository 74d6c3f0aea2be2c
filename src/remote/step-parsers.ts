import { parseAgentInstallOutput } from './agent-install.js';
import { parseAgentPollOutput } from './agent-poll.js';
import { parseApplyOutput } from './apply.js';
import { parseBackups } from './backups.js';
import { parseBootHookResult, parseBootRemove } from './boot-hook.js';
import { parseCommitOutput } from './commit.js';
import { parseFacts } from './facts.js';
import { parseStatusOutput } from './read.js';
import type { StepName } from './scripts.js';
import type { ExecResult } from './transport.js';
import { parseVerify } from './verify.js';

/**
 * Every host step's parser, as the code that runs the step uses it, called with the step's output and
 * arguments. One table for scripts/record-remote-fixtures.mjs (which records what each step prints and
 * what it parses to) and test/remote-steps.test.ts (which replays the recordings through it).
 */
export const STEP_PARSERS: Record<StepName, (r: ExecResult, args: readonly string[]) => unknown> = {
  read: (r, args) => parseStatusOutput(r.stdout, args[2] === '1', args.length > 3),
  apply: (r) => parseApplyOutput(r),
  commit: (r) => parseCommitOutput(r),
  verify: (r) => parseVerify(r.stdout),
  backups: (r) => parseBackups(r.stdout),
  'doctor-facts': (r) => parseFacts(r.stdout),
  'boot-hook': (r) => parseBootHookResult(r.stdout),
  'boot-remove': (r) => parseBootRemove(r.stdout),
  'agent-install': (r) => parseAgentInstallOutput(r),
  'agent-poll': (r) => parseAgentPollOutput(r),
};
