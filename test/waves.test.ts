/**
 * Staged releases in the published tree (src/publish/waves.ts): the staging file, where a publish puts
 * new, refreshed and first releases, what opening a wave copies, and when the next wave may open.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waveOf } from '../src/cli/publish-command.js';
import type { Host } from '../src/inventory/model.js';
import { formatManifest, type Manifest } from '../src/publish/manifest.js';
import type { PublishReport } from '../src/publish/publish-tree.js';
import {
  advanceProblems,
  formatWaves,
  openWave,
  readWaves,
  servedNow,
  stagePublished,
  waveManifestPath,
  type WavePlan,
} from '../src/publish/waves.js';

const manifest = (role: string, serial: number, expires = serial + 1000): string =>
  formatManifest({
    format: 1,
    role,
    serial,
    created: serial,
    expires,
    commit: '-',
    inventory: 'inventory/inventory.yaml',
    preserve: [],
    files: [{ name: 'iptables.up.rules', sha256: String(serial % 10).repeat(64), size: 1 }],
  } satisfies Manifest);

let out: string;
beforeEach(() => (out = mkdtempSync(join(tmpdir(), 'fwgen-waves-'))));
afterEach(() => rmSync(out, { recursive: true, force: true }));

/** Writes a role's manifest (and a stand-in signature) where `path` says. */
function serve(path: string, text: string): void {
  mkdirSync(join(out, path, '..'), { recursive: true });
  writeFileSync(join(out, path), text);
  writeFileSync(join(out, `${path}.sig`), `sig of ${text.split('\n')[2]}`);
}
const served = (role: string, k?: number) => {
  const p = join(out, k === undefined ? `roles/${role}/manifest` : waveManifestPath(role, k));
  return existsSync(p) ? /serial (\d+)/.exec(readFileSync(p, 'utf8'))![1] : undefined;
};
const report = (...roles: [string, 'new' | 'refreshed' | 'kept', number][]): PublishReport => ({
  roles: roles.map(([role, action, serial]) => ({ role, action, serial, expires: serial + 1000 })),
  blobsWritten: 0,
  bytesWritten: 0,
});
const PLAN: WavePlan = { canary: 1, waves: [50, 100], stages: 3, open: 3 };

describe('the staging file', () => {
  it('reads back what it writes; a tree without one is not staged; another text is refused', () => {
    expect(readWaves(out)).toBeUndefined();
    writeFileSync(join(out, 'waves'), formatWaves(PLAN));
    expect(readFileSync(join(out, 'waves'), 'utf8')).toBe(
      'fwgen-waves 1\ncanary 1\nwaves 50%,100%\nstages 3\nopen 3\n',
    );
    expect(readWaves(out)).toEqual(PLAN);
    writeFileSync(join(out, 'waves'), 'open lots\n');
    expect(() => readWaves(out)).toThrow(/not a staging file/);
  });
});

describe('publishing into a staged tree', () => {
  it('a new release goes to wave 1 only; the other waves keep the previous one; opening copies it on', () => {
    serve('roles/web/manifest', manifest('web', 100));
    for (const k of [1, 2, 3]) serve(waveManifestPath('web', k), manifest('web', 100));
    const before = servedNow(out, ['web']);
    serve('roles/web/manifest', manifest('web', 200)); // what publish wrote
    const plan = stagePublished(out, PLAN, report(['web', 'new', 200]), before);
    expect(plan.open).toBe(1);
    expect([served('web', 1), served('web', 2), served('web', 3)]).toEqual(['200', '100', '100']);
    // The copy is the signed manifest itself, signature included.
    expect(readFileSync(join(out, `${waveManifestPath('web', 1)}.sig`), 'utf8')).toBe('sig of serial 200');
    expect(statSync(join(out, waveManifestPath('web', 1))).mtimeMs / 1000).toBe(200);
    openWave(out, ['web'], 2);
    expect([served('web', 1), served('web', 2), served('web', 3)]).toEqual(['200', '200', '100']);
  });

  it("a role's first release waits for its wave; a tree staged afterwards seeds every wave with what it served", () => {
    serve('roles/db/manifest', manifest('db', 300));
    stagePublished(out, PLAN, report(['db', 'new', 300]), new Map());
    expect([served('db', 1), served('db', 2), served('db', 3)]).toEqual(['300', undefined, undefined]);
    serve('roles/web/manifest', manifest('web', 100));
    const plan = stagePublished(out, { ...PLAN, open: 2 }, report(['web', 'kept', 100]), servedNow(out, ['web']));
    expect([served('web', 1), served('web', 2), served('web', 3)]).toEqual(['100', '100', '100']);
    expect(plan.open).toBe(2);
  });

  it('a release signed again for a later expiry replaces the copies of its serial, not older ones', () => {
    serve('roles/web/manifest', manifest('web', 200));
    serve(waveManifestPath('web', 1), manifest('web', 200));
    serve(waveManifestPath('web', 2), manifest('web', 100));
    serve(waveManifestPath('web', 3), manifest('web', 100));
    const before = servedNow(out, ['web']);
    serve('roles/web/manifest', manifest('web', 200, 9999));
    stagePublished(out, PLAN, report(['web', 'refreshed', 200]), before);
    expect(readFileSync(join(out, waveManifestPath('web', 1)), 'utf8')).toContain('expires 9999 ');
    expect(served('web', 2)).toBe('100');
  });
});

describe('advancing', () => {
  const latest = new Map([['web', 200]]);
  const at = (agent: { serial: number; outcome: string; wave: number } | string | undefined) => [
    { host: 'w1', role: 'web', wave: 1, ...(agent !== undefined ? { agent } : {}) },
  ];

  it('opens the next wave only when every host of the open ones runs the newest release', () => {
    expect(advanceProblems(at({ serial: 200, outcome: 'applied 200', wave: 1 }), latest)).toEqual([]);
    expect(advanceProblems(at({ serial: 200, outcome: 'unchanged', wave: 1 }), latest)).toEqual([]);
    expect(advanceProblems(at({ serial: 100, outcome: 'unchanged', wave: 1 }), latest)).toEqual([
      'w1: runs serial 100, not yet 200',
    ]);
  });

  it('a failing canary stops it, and so do a host without agent, one not read, one in another wave', () => {
    expect(advanceProblems(at({ serial: 100, outcome: 'kept: test-failed', wave: 1 }), latest)).toEqual([
      'w1: last poll kept: test-failed',
    ]);
    expect(advanceProblems(at(undefined), latest)).toEqual(['w1: no agent (fwgen agent install)']);
    expect(advanceProblems(at('connect ECONNREFUSED'), latest)).toEqual(['w1: not read (connect ECONNREFUSED)']);
    expect(advanceProblems(at({ serial: 200, outcome: 'unchanged', wave: 0 }), latest)[0]).toMatch(
      /its agent is in wave none, the split puts it in wave 1/,
    );
  });

  it("splits the inventory's hosts as ship does: canary first, spread over roles", () => {
    const h = (name: string, role: string) => ({ name, role }) as Host;
    const hosts = [h('a1', 'a'), h('a2', 'a'), h('b1', 'b'), h('b2', 'b'), h('b3', 'b')];
    const { stages, wave } = waveOf(hosts, 1, [50, 100]);
    expect(stages).toBe(3);
    expect(Object.fromEntries(wave)).toEqual({ a1: 1, b1: 2, a2: 2, b2: 3, b3: 3 });
  });
});
