/**
 * Pull mode in `fwgen status` and `ship`: the read step's agent section, a host's pinned chain left out
 * of the comparison with rendered/, `behind` when the origin serves a newer serial, the agent column;
 * and ship refusing an agent host without --force (fake transport).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatStatus } from '../src/cli/status-command.js';
import { DEFAULT_PRESERVE, type Host } from '../src/inventory/model.js';
import { preserveMatcher } from '../src/model/ownership.js';
import { parseAgentState } from '../src/remote/agent-poll.js';
import { parseStatusOutput, type RemoteStatus } from '../src/remote/read.js';
import { withoutPinned } from '../src/status/agent-status.js';
import { assessHost, type StatusJob } from '../src/status/host-status.js';
import { shipHost } from '../src/ship/ship-host.js';
import { effects, fake, job as shipJob, ok, settings } from './support/fake-hosts.js';

const RENDERED = readFileSync('test/golden/focused/app/iptables.up.rules', 'utf8');
const PINNED = [
  ':FWGEN-AGENT - [0:0]',
  '-A INPUT -m comment --comment "fwgen agent pinned" -j FWGEN-AGENT',
  '-A OUTPUT -m comment --comment "fwgen agent pinned" -j FWGEN-AGENT',
  '-A FWGEN-AGENT -s 203.0.113.0/28 -p tcp -m tcp --dport 22 -m comment --comment "fwgen agent management ssh" -j ACCEPT',
];

/** The rendered file as an agent host runs it: the pinned chain declared and filled, hooks first. */
function withPinned(text: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  for (const l of lines) {
    if (l === ':FWGEN-FORWARD - [0:0]' || (l.startsWith(':FWGEN-INPUT') && !text.includes(':FWGEN-FORWARD')))
      out.push(PINNED[0]);
    if (l.startsWith('-A INPUT ') && !out.includes(PINNED[1])) out.push(PINNED[1]);
    if (l.startsWith('-A OUTPUT ') && !out.includes(PINNED[2])) out.push(PINNED[2]);
    if (l.startsWith('-A FWGEN-') && !out.includes(PINNED[3])) out.push(PINNED[3]);
    out.push(l);
  }
  return out.join('\n');
}

const host: Host = {
  name: 'app1',
  role: 'app',
  addresses: [],
  ssh: { host: 'app1', user: 'root', port: 22, knownHosts: '', sudo: false },
};
const job = (published?: number): StatusJob => ({
  host,
  paths: { rules: '/etc/iptables.up.rules', rules6: '/etc/ip6tables.up.rules' },
  v4: Buffer.from(RENDERED),
  preserve: preserveMatcher(DEFAULT_PRESERVE),
  ...(published !== undefined ? { published } : {}),
});
const STATE = 'serial=1700000000\noutcome=unchanged\ndetail=serial 1700000000\npoll=1800000000\nsuccess=1800000000\n';
const remote = (o: Partial<RemoteStatus> = {}): RemoteStatus => ({
  stateJson: '{"fwgen":"0.1.0","shippedAt":"2026-12-06T00:00:00Z","shippedBy":"fwgen agent (release serial 1)"}',
  file4: withPinned(RENDERED),
  live4: withPinned(RENDERED),
  backups: 1,
  armed: false,
  locked: false,
  fp4: '-',
  fp6: '-',
  agent: true,
  agentState: STATE,
  ...o,
});

describe('the read step on an agent host', () => {
  const section = (t: string) => `${Buffer.byteLength(t)}\n${t}`;
  // The agent's state, then the native ruleset (-1: no nft on the host).
  const out = (tail: string, agent?: string) =>
    [section('{}'), section('file'), section('live'), '-1\n', '-1\n', ...(agent ? [agent, '-1\n'] : []), tail].join('');

  it('reads the agent state section and the agent flag', () => {
    const r = parseStatusOutput(out('status=read backups=0 armed=0 locked=0 ipset=0 agent=1\n', section(STATE)), false);
    expect(r.ok && r.status).toMatchObject({ agent: true, agentState: STATE });
  });

  it('an agent that never polled: flag, no state; a host without agent: neither', () => {
    const never = parseStatusOutput(out('status=read backups=0 armed=0 locked=0 ipset=0 agent=1\n', '-1\n'), false);
    expect(never.ok && never.status.agent).toBe(true);
    expect(never.ok && never.status.agentState).toBeUndefined();
    const none = parseStatusOutput(out('status=read backups=0 armed=0 locked=0 ipset=0 agent=0\n', '-1\n'), false);
    expect(none.ok && 'agent' in none.status).toBe(false);
    // An older read step (no agent section) still parses.
    expect(parseStatusOutput(out('status=read backups=0 armed=0 locked=0 ipset=0\n'), false).ok).toBe(true);
  });

  it("parses the agent's state file, refusing outcomes it does not print", () => {
    expect(parseAgentState(STATE)).toEqual({
      outcome: 'unchanged',
      serial: 1700000000,
      poll: 1800000000,
      success: 1800000000,
      detail: 'serial 1700000000',
      wave: 0,
    });
    expect(parseAgentState(`${STATE}wave=2\n`)?.wave).toBe(2);
    expect(parseAgentState('outcome=rm -rf /\nserial=1\n')).toBeUndefined();
    expect(parseAgentState('outcome=kept: http-404\nserial=12x\n')).toMatchObject({
      outcome: 'kept: http-404',
      serial: 0,
    });
  });
});

describe('status of an agent host', () => {
  it('leaves the pinned chain and its hooks out of the comparison with rendered/', () => {
    expect(withoutPinned(withPinned(RENDERED))).toBe(RENDERED);
    const st = assessHost(job(), remote());
    expect(st).toMatchObject({ state: 'in-sync', agent: { serial: 1700000000, outcome: 'unchanged' } });
    expect(st.foreign).toEqual([]);
    // Without the agent flag, the same live rules differ from rendered/ (an fwgen chain rendered/ lacks).
    expect(assessHost(job(), remote({ agent: undefined, agentState: undefined })).state).toBe('drifted');
  });

  it('is behind when the origin serves a newer serial; in sync at the same one', () => {
    expect(assessHost(job(1700000000), remote()).state).toBe('in-sync');
    const st = assessHost(job(1700000500), remote());
    expect(st).toMatchObject({ state: 'behind', agent: { published: 1700000500 } });
    expect(st.reason).toBe('its agent runs serial 1700000000, the origin serves 1700000500: not pulled yet');
  });

  it('shows serial, published serial, last outcome and its age', () => {
    const text = formatStatus([assessHost(job(1700000500), remote())], false, 1800000042);
    expect(text).toMatch(
      /^app1 +app +behind .* agent serial 1700000000 \(published 1700000500\), last poll unchanged 42s ago/m,
    );
    const never = formatStatus([assessHost(job(), remote({ agentState: undefined }))], false, 1800000042);
    expect(never).toContain('agent serial 0, never polled');
  });
});

describe('ship to an agent host', () => {
  // state, file, live, live sets, sets file, agent state, native ruleset.
  const agentRead = ok('-1\n-1\n0\n-1\n-1\n-1\n-1\nstatus=read backups=0 armed=0 locked=0 ipset=0 agent=1\n');

  it('refuses without --force (its next poll would undo it), saying what to do instead; applies with it', async () => {
    const h = fake({ read: agentRead });
    const r = await shipHost(shipJob('web1'), settings, effects({ web1: h }));
    expect(r).toMatchObject({ outcome: 'failed' });
    expect(r.reason).toContain('the host runs the fwgen agent (pull mode)');
    expect(r.reason).toContain('`fwgen publish` then `fwgen agent poll`');
    expect(h.scripts).toEqual(['read']);
    const forced = fake({ read: agentRead });
    const f = await shipHost(shipJob('web1'), { ...settings, force: true }, effects({ web1: forced }));
    expect(f.outcome).toBe('applied');
    expect(forced.scripts).toEqual(['read', 'apply', 'commit']);
  });

  it('refuses a rollback or a removal where the command says so (the next poll would undo it), forced or not', async () => {
    const says = (host: string) => `agent on ${host}: uninstall it first`;
    const rollback = { ...shipJob('web1'), kind: 'rollback' as const, to: '20261121T000000Z', ipv6: false };
    for (const job of [rollback, shipJob('web1')]) {
      const h = fake({ read: agentRead });
      const r = await shipHost(job, { ...settings, force: true, agentHost: says }, effects({ web1: h }));
      expect(r).toMatchObject({ outcome: 'failed', reason: 'agent on web1: uninstall it first' });
      expect(h.scripts).toEqual(['read']);
    }
    // A host without the agent is not refused.
    const plain = fake();
    const r = await shipHost(shipJob('web1'), { ...settings, force: true, agentHost: says }, effects({ web1: plain }));
    expect(r.outcome).toBe('applied');
  });
});
