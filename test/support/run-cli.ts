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

/** One host's line of a `ship`/`rollback --json` run. */
export interface HostRow {
  host: string;
  role: string;
  outcome: string;
  reason: string;
  backup?: string;
  removed?: string[];
}

/** A run of a host command with `--json`: the process, and the host rows it printed (none if not JSON). */
export interface HostsRun extends CliRun {
  results: HostRow[];
}

/** Runs `fwgen ARGS` (see {@link runFwgen}) and reads the host rows of its `--json` output. */
export async function runFwgenHosts(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
  entry = CLI,
): Promise<HostsRun> {
  const r = await runFwgen(cwd, args, env, entry);
  return { ...r, results: parseJson(r.stdout, [] as HostRow[]) };
}

/** iptables-save text as comparable lines: comments dropped, chain counters zeroed. */
export function savedLines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'));
}
