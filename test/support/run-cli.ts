import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

/** The built CLI (vitest's global setup builds dist/ first). */
export const CLI = resolve('dist/cli/main.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The same CLI with internal options from FWGEN_INTERNAL (JSON), a test-only entry: test/support/fwgen-internal.mjs. */
export const CLI_INTERNAL = resolve('test/support/fwgen-internal.mjs');

/** Runs `fwgen ARGS` in `cwd` as a real process, without the caller's SSH agent, with extra env. */
export function runFwgen(cwd: string, args: string[], env: Record<string, string> = {}, entry = CLI): Promise<CliRun> {
  return new Promise((done) => {
    const { SSH_AUTH_SOCK: _agent, ...base } = process.env;
    const child = spawn(process.execPath, [entry, ...args], { cwd, env: { ...base, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

/** The JSON a `--json` run printed, or `fallback` when stdout is not JSON. */
export function parseJson<T>(stdout: string, fallback: T): T {
  try {
    return JSON.parse(stdout) as T;
  } catch {
    return fallback;
  }
}

/** One host's row of a `ship`/`rollback`/`remove --json` run (README "JSON output"). */
export interface HostRow {
  host: string;
  role: string;
  stage: string;
  outcome: string;
  reason: string;
  ms: number;
  backup: string | null;
  restored: string | null;
  removed: string[];
  boot: { status: string; ok: boolean; path: string | null; detail: string } | null;
  diff: string | null;
}

/** A run of a host command with `--json`: the process, its JSON object, and its host rows (none if not JSON). */
export interface HostsRun extends CliRun {
  json: Record<string, unknown> | undefined;
  results: HostRow[];
}

/**
 * Runs `fwgen ARGS` (see {@link runFwgen}) and reads the host rows of its `--json`: the `hosts` of a
 * ship/rollback/remove object, or the rows of `status --json` (an array).
 */
export async function runFwgenHosts(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
  entry = CLI,
): Promise<HostsRun> {
  const r = await runFwgen(cwd, args, env, entry);
  const parsed = parseJson<unknown>(r.stdout, undefined);
  if (Array.isArray(parsed)) return { ...r, json: undefined, results: parsed as HostRow[] };
  const json = parsed as Record<string, unknown> | undefined;
  return { ...r, json, results: (json?.hosts as HostRow[] | undefined) ?? [] };
}

/** iptables-save text as comparable lines: comments dropped, chain counters zeroed. */
export function savedLines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'));
}
