// Every example in README.md runs: each ```yaml block is an inventory that loads and renders as printed,
// each ```sh block runs (in a copy of this checkout, as a newcomer would type it), each ```text block
// that starts with `$ npx fwgen ...` is a transcript: the command runs there too and prints what follows it,
// and every option of the ```text command synopsis exists in that command's --help. The README cannot
// drift from fwgen.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseInventory } from '../src/inventory/load-inventory.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

interface Block {
  lang: string;
  line: number;
  text: string;
}

/** Fenced blocks of a Markdown text, with their info string and the line the block starts on. */
function fencedBlocks(md: string): Block[] {
  const out: Block[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith('```'));
    if (end < 0) throw new Error(`README.md:${i + 1}: unclosed code block`);
    out.push({ lang: open[1]!, line: i + 1, text: `${lines.slice(i + 1, end).join('\n')}\n` });
    i = end;
  }
  return out;
}

const blocks = fencedBlocks(README);
const of = (lang: string) => blocks.filter((b) => b.lang === lang);

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 600_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A ```text block starting with `$ npx fwgen ...`: the command, as a newcomer types it in a checkout,
 * and what it prints. (Blocks starting `$ fwgen ...` illustrate commands that need hosts or keys.)
 */
function isTranscript(b: Block): boolean {
  return b.lang === 'text' && b.text.startsWith('$ npx fwgen ');
}

/** Output as a transcript shows it: commits (which differ at every run) as `0000000`. */
function normalize(out: string): string {
  return out.replace(/\(([0-9a-f]{7})\)/g, '(0000000)');
}

describe('README.md code blocks', () => {
  it('every block says what it is (yaml, sh or text), and there are some of each', () => {
    expect(
      blocks
        .filter((b) => !['yaml', 'sh', 'text'].includes(b.lang))
        .map((b) => `README.md:${b.line} ${b.lang || '(none)'}`),
    ).toEqual([]);
    for (const lang of ['yaml', 'sh', 'text']) expect(of(lang).length, lang).toBeGreaterThan(0);
  });
});

describe.each(of('yaml').map((b) => [`README.md:${b.line}`, b] as const))('yaml block at %s', (_, block) => {
  it('is a valid inventory as printed (no errors; warnings allowed)', () => {
    expect(() => parseInventory(block.text, `README.md block at line ${block.line}`)).not.toThrow();
  });

  it('renders with fwgen render, and its $schema line points at the schema', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwgen-readme-yaml-'));
    try {
      mkdirSync(join(dir, 'inventory'));
      writeFileSync(join(dir, 'inventory/inventory.yaml'), block.text);
      const r = run(process.execPath, [CLI, 'render'], dir);
      expect(r.code, r.stderr).toBe(0);
      expect(existsSync(join(dir, 'rendered'))).toBe(true);
      const schema = /\$schema=(\S+)/.exec(block.text)?.[1];
      if (schema) expect(existsSync(resolve(ROOT, 'inventory', schema)), schema).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('text block: the command synopsis', () => {
  const synopsis = of('text').find((b) => b.text.startsWith('fwgen '));
  it('names only commands and options that fwgen --help lists', () => {
    expect(synopsis).toBeDefined();
    const byCommand = new Map<string, Set<string>>();
    let current = '';
    for (const line of synopsis!.text.split('\n').filter(Boolean)) {
      const m = /^fwgen (\w+)/.exec(line);
      if (m) current = m[1]!;
      const opts = byCommand.get(current) ?? new Set<string>();
      for (const o of line.matchAll(/(?<![\w-])(--?[a-z][a-z-]*)/g)) opts.add(o[1]!);
      byCommand.set(current, opts);
    }
    expect(byCommand.size).toBeGreaterThanOrEqual(9);
    for (const [cmd, opts] of byCommand) {
      const help = run(process.execPath, [CLI, cmd, '--help'], ROOT);
      expect(help.code, `fwgen ${cmd} --help`).toBe(0);
      for (const o of opts)
        expect(help.stdout, `README synopsis: fwgen ${cmd} ${o}`).toMatch(new RegExp(`(^|[ ,])${o}\\b`, 'm'));
    }
  });
});

describe('sh blocks, run in a copy of this checkout', () => {
  let parent = '';
  let copy = '';
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    // The copy sits in a folder of its own: Getting started makes the inventory repository beside it (../).
    parent = mkdtempSync(join(tmpdir(), 'fwgen-readme-sh-'));
    copy = join(parent, 'fwgen');
    cpSync(ROOT, copy, { recursive: true, filter: (src) => !/\/(node_modules|dist|\.git)$/.test(src) });
    // npm reads these like its command-line flags: no audit, no funding notes, use the cache first.
    env = {
      ...process.env,
      // For the examples that commit to a scratch repository.
      GIT_AUTHOR_NAME: 'readme',
      GIT_AUTHOR_EMAIL: 'readme@example.net',
      GIT_COMMITTER_NAME: 'readme',
      GIT_COMMITTER_EMAIL: 'readme@example.net',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_NOSYSTEM: '1',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_prefer_offline: 'true',
      npm_config_loglevel: 'error',
    };
  });

  afterAll(() => {
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  /**
   * `npm test` in the copy runs one test file: the whole suite would run this test again, recursively.
   * Nothing else is changed.
   */
  const asRun = (script: string) => script.replace(/\bnpm test\b/g, 'npm test -- test/render.test.ts');

  // Shell blocks and transcripts run in README order: a transcript may show what an earlier block set up.
  const runnable = blocks.filter((b) => b.lang === 'sh' || isTranscript(b));

  it.each(runnable.map((b) => [`README.md:${b.line}`, b] as const))(
    '%s runs (a transcript: and prints what the README shows)',
    (_, block) => {
      if (!isTranscript(block)) {
        const r = run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', asRun(block.text)], copy, env);
        expect(r.code, `${block.text}\n--- stderr:\n${r.stderr}\n--- stdout:\n${r.stdout.slice(-3000)}`).toBe(0);
        return;
      }
      const [command, ...shown] = block.text.trimEnd().split('\n');
      const r = run('bash', ['--noprofile', '--norc', '-o', 'pipefail', '-c', command!.slice(2)], copy, env);
      // 1 is an answer (denied, access changed); 2 and more are errors.
      expect(r.code === 0 || r.code === 1, `${command}\n${r.stderr}`).toBe(true);
      expect(normalize(r.stdout).trimEnd()).toBe(shown.join('\n'));
    },
    600_000,
  );
});
