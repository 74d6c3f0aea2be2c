import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StepName } from '../src/remote/scripts.js';
import { STEP_PARSERS as PARSERS } from '../src/remote/step-parsers.js';
import type { ExecResult } from '../src/remote/transport.js';

// Every host step's parser, replayed on what the step really printed (recorded by
// scripts/record-remote-fixtures.mjs against the real kernel in a namespace): one file a case,
// pinning the step, its arguments, its output and the parsed result (pyinfra's tests/facts).

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
