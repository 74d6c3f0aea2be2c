/** Which keys fwgen offers, in which order: as OpenSSH does, with no passphrase prompt ever. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hop } from '../src/remote/reach.js';
import { authMethods, FilteredAgent } from '../src/remote/ssh-transport.js';

describe('authentication methods', () => {
  let dir: string;
  let agentPid = 0;
  let sock: string;
  const key = (name: string, pass = '') => {
    const path = join(dir, name);
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', pass, '-C', name, '-f', path]);
    return path;
  };
  const hop = (identities: string[], identitiesOnly = false): Hop => ({
    name: 'h',
    host: 'h',
    port: 22,
    user: 'root',
    identities,
    identitiesOnly,
    knownHosts: '/dev/null',
  });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-auth-'));
    sock = join(dir, 'agent.sock');
    const out = spawnSync('ssh-agent', ['-a', sock, '-s'], { encoding: 'utf8' }).stdout;
    agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)?.[1]);
  });

  afterAll(() => {
    if (agentPid > 0) process.kill(agentPid);
    rmSync(dir, { recursive: true, force: true });
  });

  it('several identity files are offered in order, missing ones skipped; the agent goes first', () => {
    const a = key('a');
    const b = key('b');
    const plan = authMethods(hop([join(dir, 'missing'), b, a]), sock);
    expect(plan.methods.map((m) => m.label)).toEqual(['ssh-agent (SSH_AUTH_SOCK)', b, a]);
    expect(authMethods(hop([a]), undefined).methods.map((m) => m.label)).toEqual([a]);
  });

  it('an encrypted key is left to the agent; without an agent the reason says what to do', () => {
    const enc = key('enc', 'secret-pass');
    expect(authMethods(hop([enc]), sock)).toMatchObject({
      methods: [{ label: 'ssh-agent (SSH_AUTH_SOCK)' }],
      problems: [`${enc} is encrypted: used only through the agent`],
    });
    const none = authMethods(hop([enc]), undefined);
    expect(none.methods).toEqual([]);
    expect(none.problems[0]).toBe(
      `${enc} is encrypted and no ssh-agent is running (SSH_AUTH_SOCK is unset): run ssh-agent and ssh-add ${enc}`,
    );
  });

  it('IdentitiesOnly: only the agent keys matching an identity file (by its .pub) are offered', async () => {
    const mine = key('mine');
    const other = key('other');
    for (const k of [mine, other])
      expect(spawnSync('ssh-add', ['-q', k], { env: { ...process.env, SSH_AUTH_SOCK: sock } }).status).toBe(0);
    const plan = authMethods(hop([mine], true), sock);
    const agent = (plan.methods[0].method as { agent: unknown }).agent;
    expect(agent).toBeInstanceOf(FilteredAgent);
    const keys = await new Promise<ssh2.ParsedKey[]>((resolve, reject) =>
      (agent as FilteredAgent).getIdentities((err, k) => (err ? reject(err) : resolve((k ?? []) as ssh2.ParsedKey[]))),
    );
    const minePub = (ssh2.utils.parseKey(readFileSync(`${mine}.pub`)) as ssh2.ParsedKey).getPublicSSH();
    expect(keys.map((k) => k.getPublicSSH().equals(minePub))).toEqual([true]);
    expect(typeof (authMethods(hop([mine]), sock).methods[0].method as { agent: unknown }).agent).toBe('string');
  });
});
