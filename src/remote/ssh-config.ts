import { existsSync, readdirSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import SSHConfig from 'ssh-config';
import { ConfigError } from '../errors.js';
import { globMatch } from '../util/glob.js';
import { readBounded } from '../util/read-bounded.js';

/**
 * OpenSSH client configuration (ssh_config(5)), parsed by the `ssh-config` package and evaluated
 * here: that package does not follow `Include` and would run `Match exec` commands, so fwgen
 * flattens includes itself and evaluates `Host`/`Match` blocks without ever running a command.
 */

/** One `Host` or `Match` block (or the lines before the first one), in file order, includes inlined. */
interface Block {
  readonly host?: readonly string[];
  readonly match?: readonly (readonly [string, string])[];
  readonly directives: (readonly [string, string])[];
}

/** A loaded ssh_config: blocks in evaluation order, and what fwgen chose not to do. */
export interface SshConfig {
  readonly file: string;
  readonly blocks: readonly Block[];
  /** e.g. `Match exec` blocks that were treated as not matching. */
  readonly warnings: readonly string[];
}

/** What ssh_config says about one host; only settings the file sets. */
export interface HostConfig {
  readonly hostName?: string;
  readonly user?: string;
  readonly port?: number;
  readonly identityFiles: readonly string[];
  readonly identitiesOnly?: boolean;
  readonly proxyJump?: string;
  readonly knownHosts?: string;
}

export const NO_SSH_CONFIG: SshConfig = { file: 'none', blocks: [], warnings: [] };

/** Loads `~/.ssh/config` (absent: empty), another file, or nothing for `none`. */
export function loadSshConfig(path: string | undefined): SshConfig {
  if (path === 'none') return NO_SSH_CONFIG;
  const file = expandTilde(path ?? '~/.ssh/config');
  if (!existsSync(file)) {
    if (path !== undefined) throw new ConfigError(`ssh config ${path} does not exist (expected a file, or none)`);
    return { ...NO_SSH_CONFIG, file };
  }
  const warnings: string[] = [];
  const blocks: Block[] = [{ directives: [] }];
  flatten(file, 0, { out: blocks, warnings, files: 0, top: file });
  return { file, blocks, warnings };
}

/** Bounds on what one ssh_config may pull in: nesting (as OpenSSH), files read in all, bytes per file. */
export const SSH_CONFIG_LIMITS = { depth: 16, files: 256, bytes: 1024 * 1024 };

type Line = ReturnType<typeof SSHConfig.parse>[number];

/** What flattening one ssh_config collects, and how many files it has read (Include fan-out is bounded). */
interface Flattening {
  readonly out: Block[];
  readonly warnings: string[];
  files: number;
  readonly top: string;
}

function flatten(file: string, depth: number, f: Flattening): void {
  if (depth > SSH_CONFIG_LIMITS.depth)
    throw new ConfigError(`${file}: Include nested more than ${SSH_CONFIG_LIMITS.depth} levels deep`);
  // A file that includes several files that each include them again reads 4^16 files: stop early.
  if (++f.files > SSH_CONFIG_LIMITS.files)
    throw new ConfigError(
      `${f.top}: its Include lines read more than ${SSH_CONFIG_LIMITS.files} files (a loop, or files that include each other)`,
    );
  let parsed: ReturnType<typeof SSHConfig.parse>;
  try {
    parsed = SSHConfig.parse(readBounded(file, SSH_CONFIG_LIMITS.bytes, 'ssh_config file').toString('utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: not a valid ssh_config file: ${(err as Error).message}`);
  }
  addLines(parsed, file, depth, f);
}

function addLines(lines: readonly Line[], file: string, depth: number, f: Flattening): void {
  const { out, warnings } = f;
  for (const line of lines) {
    if (line.type !== SSHConfig.DIRECTIVE) continue;
    const param = line.param.toLowerCase();
    const values = valuesOf(line.value);
    if (param === 'host' || param === 'match') {
      const block: Block =
        param === 'host'
          ? { host: values, directives: [] }
          : { match: matchCriteria(values, file, warnings), directives: [] };
      out.push(block);
      if ('config' in line) addLines(line.config, file, depth, f);
    } else if (param === 'include') {
      const enclosing = out[out.length - 1];
      const before = out.length;
      for (const pattern of values) for (const inc of expandInclude(pattern)) flatten(inc, depth + 1, f);
      // A Host or Match inside the included file ends there: the enclosing block resumes after it.
      if (out.length !== before) out.push({ host: enclosing.host, match: enclosing.match, directives: [] });
    } else {
      out[out.length - 1].directives.push([param, values.join(' ')]);
    }
  }
}

function valuesOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return (value as { val: string }[]).map((v) => v.val);
}

function matchCriteria(values: readonly string[], file: string, warnings: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < values.length; i++) {
    const key = values[i].toLowerCase();
    if (['all', 'final', 'canonical', '!final', '!canonical'].includes(key)) out.push([key, '']);
    else out.push([key, values[++i] ?? '']);
    if (key.replace(/^!/, '') === 'exec') {
      warnings.push(
        `${file}: "Match exec ${values[i]}" was not run (fwgen never runs commands from ssh_config); ` +
          'the block is treated as not matching',
      );
    }
  }
  return out;
}

/** Relative Include paths are relative to ~/.ssh, as OpenSSH reads a user configuration; globs in the last part. */
function expandInclude(pattern: string): string[] {
  const path = expandTilde(pattern);
  const full = isAbsolute(path) ? path : join(homedir(), '.ssh', path);
  if (!/[*?]/.test(basename(full))) return existsSync(full) ? [full] : [];
  const dir = dirname(full);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => globMatch(basename(full), f, true))
    .sort()
    .map((f) => join(dir, f));
}

/** Evaluates ssh_config for `host` as OpenSSH does: first value wins, IdentityFile accumulates. */
export function lookupHost(cfg: SshConfig, host: string, user?: string): HostConfig {
  const ctx = { original: host, hostName: host, user: user ?? userInfo().username };
  const first = new Map<string, string>();
  const identityFiles: string[] = [];
  for (const block of cfg.blocks) {
    if (block.host && !patternListMatches(block.host, ctx.original)) continue;
    if (block.match && !block.match.every(([k, v]) => criterionMatches(k, v, ctx))) continue;
    for (const [key, value] of block.directives) {
      if (key === 'identityfile') identityFiles.push(value);
      else if (!first.has(key)) {
        first.set(key, value);
        if (key === 'hostname') ctx.hostName = value.replace(/%h/g, host);
        if (key === 'user' && user === undefined) ctx.user = value;
      }
    }
  }
  const port = first.get('port');
  const only = first.get('identitiesonly')?.toLowerCase();
  return {
    hostName: first.has('hostname') ? ctx.hostName : undefined,
    user: first.get('user'),
    port: port === undefined ? undefined : Number(port),
    identityFiles: identityFiles
      .filter((f) => f.toLowerCase() !== 'none')
      .map((f) => f.replace(/%h/g, host).replace(/%r/g, ctx.user)),
    identitiesOnly: only === undefined ? undefined : only === 'yes',
    proxyJump: first.get('proxyjump'),
    knownHosts: first.get('userknownhostsfile')?.split(/\s+/)[0],
  };
}

interface MatchContext {
  readonly original: string;
  readonly hostName: string;
  readonly user: string;
}

function criterionMatches(key: string, value: string, ctx: MatchContext): boolean {
  const negated = key.startsWith('!');
  const k = negated ? key.slice(1) : key;
  let result: boolean;
  switch (k) {
    case 'all':
    case 'final':
    case 'canonical':
      result = true;
      break;
    case 'host':
      result = patternListMatches(value.split(','), ctx.hostName);
      break;
    case 'originalhost':
      result = patternListMatches(value.split(','), ctx.original);
      break;
    case 'user':
      result = patternListMatches(value.split(','), ctx.user);
      break;
    case 'localuser':
      result = patternListMatches(value.split(','), userInfo().username);
      break;
    default:
      // exec (never run), tagged, localnetwork...: not evaluated, so the block does not apply.
      return false;
  }
  return negated ? !result : result;
}

/** An ssh_config pattern list: any positive match, and no negated one. */
export function patternListMatches(patterns: readonly string[], name: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name, true)) return false;
    } else if (globMatch(p, name, true)) matched = true;
  }
  return matched;
}

/** Expands a leading `~` or `~/` to the home directory of the user running fwgen. */
export function expandTilde(path: string): string {
  return path === '~' ? homedir() : path.startsWith('~/') ? `${homedir()}/${path.slice(2)}` : path;
}
