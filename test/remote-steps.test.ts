import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAgentInstallOutput } from '../src/remote/agent-install.js';
import { parseAgentPollOutput } from '../src/remote/agent-poll.js';
import { parseApplyOutput } from '../src/remote/apply.js';
import { parseBackups } from '../src/remote/backups.js';
import { parseBootHookResult, parseBootRemove } from '../src/remote/boot-hook.js';
import { parseCommitOutput } from '../src/remote/commit.js';
import { parseFacts } from '../src/remote/facts.js';
import { parseStatusOutput } from '../src/remote/read.js';
import type { StepName } from '../src/remote/scripts.js';
import type { ExecResult } from '../src/remote/transport.js';
import { parseVerify } from '../src/remote/verify.js';

// Every host step's parser, replayed on what the step really printed (recorded by
// scripts/record-remote-fixtures.mjs against the real kernel in a namespace): one file a case,
// pinning the step, its arguments, its output and the parsed result (pyinfra's tests/facts).
const PARSERS: Record<StepName, (r: ExecResult, args: readonly string[]) => unknown> = {
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

interface Fixture extends ExecResult {
  readonly step: StepName;
  readonly args: readonly string[];
  readonly expected: unknown;
}

const DIR = join(import.meta.dirname, 'fixtures/remote');
const cases = readdirSync(DIR).flatMap((step) =>
  readdirSync(join(DIR, step)).map((file) => ({
    name: `${step}/${file}`,
    fixture: JSON.parse(readFileSync(join(DIR, step, file), 'utf8')) as Fixture,
  })),
);

describe('host steps: each parser on recorded output', () => {
  it.each(cases)('$name', ({ name, fixture }) => {
    expect(name.split('/')[0]).toBe(fixture.step);
    const parsed = PARSERS[fixture.step](fixture, fixture.args);
    expect(JSON.parse(JSON.stringify(parsed ?? null))).toEqual(fixture.expected);
  });

  it('every step has recorded cases', () => {
    const steps = new Set(cases.map((c) => c.fixture.step));
    expect([...steps].sort()).toEqual(Object.keys(PARSERS).sort());
  });

  it('the recordings cover the outcomes the fleet logic tells apart', () => {
    const kinds = (step: string) =>
      cases
        .filter((c) => c.fixture.step === step)
        .map((c) => (c.fixture.expected as { kind?: string }).kind ?? c.fixture.expected);
    expect(new Set(kinds('apply'))).toEqual(new Set(['applied', 'locked', 'failed']));
    expect(new Set(kinds('commit'))).toEqual(new Set(['committed', 'never-armed']));
    expect(new Set(kinds('verify'))).toEqual(new Set(['still-armed', 'rolled-back', 'committed-or-gone']));
    expect(new Set(kinds('agent-install'))).toEqual(new Set(['installed', 'unchanged', 'uninstalled', 'absent']));
    const polls = cases.filter((c) => c.fixture.step === 'agent-poll').map((c) => c.fixture.expected);
    expect(new Set(polls.map((p) => (p as { outcome?: string }).outcome ?? (p as { kind: string }).kind))).toEqual(
      new Set([expect.stringMatching(/^applied \d+$/), 'unchanged', 'kept: unreachable', 'not-installed']),
    );
  });
});
