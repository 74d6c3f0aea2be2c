/** One error hierarchy for fwgen; only the CLI entry turns these into stderr text and exit codes. */

/** Exit codes: 0 success, 1 the work failed, 2 bad input or usage. */
export type ExitCode = 1 | 2;

/** A problem found in an input file, with its position. */
export interface Problem {
  file: string;
  line: number;
  col: number;
  message: string;
  severity: 'error' | 'warning';
}

/** Formats a problem as `file:line:col: message`. */
export function formatProblem(p: Problem): string {
  const tag = p.severity === 'warning' ? 'warning: ' : '';
  return `${p.file}:${p.line}:${p.col}: ${tag}${p.message}`;
}

/** Base class of every expected fwgen failure. */
export class FwgenError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The inventory (or another input file) is invalid; carries every problem found. */
export class InputError extends FwgenError {
  constructor(
    readonly problems: readonly Problem[],
    hint = 'fix the inventory; nothing was written or shipped',
  ) {
    super(problems.map(formatProblem).join('\n'), 2, hint);
  }
}

/** Bad command-line usage or an unusable setting. */
export class UsageError extends FwgenError {
  constructor(message: string, hint?: string) {
    super(message, 2, hint);
  }
}

/** A template could not be loaded or rendered. */
export class TemplateError extends FwgenError {
  constructor(message: string, hint?: string) {
    super(message, 2, hint);
  }
}

/** The work was done but its result is a failure (stale files, a failed host). */
export class WorkFailedError extends FwgenError {
  constructor(message: string, hint?: string) {
    super(message, 1, hint);
  }
}

/** A ruleset would lock the deployer out of a host. */
export class LockoutError extends FwgenError {
  constructor(message: string, hint?: string) {
    super(message, 2, hint);
  }
}

/** An ssh_config file (or a jump host setting) fwgen cannot use. */
export class ConfigError extends FwgenError {
  constructor(message: string, hint?: string) {
    super(message, 2, hint);
  }
}
