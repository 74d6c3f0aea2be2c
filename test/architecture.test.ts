import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The stages of STYLE.md, upstream first: a folder may import only folders of a lower rank (and itself).
// Folders of one rank are siblings and never import each other. A new folder must be placed here.
const RANK: Readonly<Record<string, number>> = {
  util: 0,
  'errors.ts': -1, // the one error hierarchy: below everything
  inventory: 1,
  model: 1,
  resolve: 2,
  render: 3,
  output: 4,
  remote: 4,
  audit: 4,
  init: 4,
  lockout: 5,
  access: 5,
  ship: 6,
  status: 6,
  doctor: 6,
  publish: 6,
  agent: 6,
  cli: 7,
};

const SRC = resolve(import.meta.dirname, '../src');

/** Every relative import (static, type-only, dynamic, re-export) of every .ts file under `root`. */
function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8');
        const specs = [...text.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]);
        graph.set(
          relative(root, path),
          specs.map((s) => relative(root, resolve(dirname(path), s.replace(/\.js$/, '.ts')))),
        );
      }
    }
  };
  walk(root);
  return graph;
}

/** Import cycles, each as the files around it (found by depth-first search). */
export function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const dep of graph.get(file) ?? []) {
      if (state.get(dep) === 'open') cycles.push([...stack.slice(stack.indexOf(dep)), dep]);
      else if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return cycles;
}

/** Imports that point down the stages (or sideways between siblings), and files in a folder with no rank. */
export function findUpwardImports(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const problems: string[] = [];
  const stage = (file: string): string => file.split('/')[0];
  for (const [file, deps] of graph) {
    const from = stage(file);
    if (RANK[from] === undefined)
      problems.push(`${file}: folder ${from} has no place in the stages (test/architecture.test.ts)`);
    for (const dep of deps) {
      const to = stage(dep);
      if (to === from) continue;
      if (RANK[to] === undefined || RANK[from] === undefined || RANK[to] >= RANK[from])
        problems.push(`${file} imports ${dep}: ${from} may not import ${to}`);
    }
  }
  return problems;
}

describe('the stages of src/ (STYLE.md)', () => {
  const graph = importGraph(SRC);

  it('reads the real import graph (type-only and dynamic imports included)', () => {
    expect(graph.get('cli/program.ts')).toContain('cli/internal.ts');
    expect(graph.get('cli/program.ts')).toContain('cli/ship-command.ts'); // import('./ship-command.js')
    expect(graph.get('ship/run-ship.ts')).toContain('audit/audit-log.ts'); // import type
  });

  it('has no import cycle', () => {
    expect(findCycles(graph)).toEqual([]);
  });

  it('imports point only upstream: nothing imports the CLI, ship/status/doctor never import each other', () => {
    expect(findUpwardImports(graph)).toEqual([]);
  });

  it('the checks can fail: a cycle, an upward import, a sideways import and an unplaced folder are found', () => {
    const bad = new Map<string, string[]>([
      ['ship/a.ts', ['ship/b.ts', 'cli/program.ts']],
      ['ship/b.ts', ['ship/a.ts', 'status/host-status.ts']],
      ['status/host-status.ts', []],
      ['cli/program.ts', []],
      ['newstage/x.ts', ['model/ruleset.ts']],
      ['model/ruleset.ts', []],
    ]);
    expect(findCycles(bad)).toEqual([['ship/a.ts', 'ship/b.ts', 'ship/a.ts']]);
    expect(findUpwardImports(bad)).toEqual([
      'ship/a.ts imports cli/program.ts: ship may not import cli',
      'ship/b.ts imports status/host-status.ts: ship may not import status',
      'newstage/x.ts: folder newstage has no place in the stages (test/architecture.test.ts)',
      'newstage/x.ts imports model/ruleset.ts: newstage may not import model',
    ]);
  });
});
