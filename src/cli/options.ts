import { UsageError } from '../errors.js';
import type { ProjectOptions } from './project.js';

/** Options of every command that talks to hosts (main.ts `hostOptions`). */
export interface HostOptions extends ProjectOptions {
  host?: string[];
  concurrency: string;
  connectTimeout: string;
  json?: boolean;
}

/** Parses a numeric option that must be a whole number ≥ 1. */
export function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${value} is not a positive whole number`);
  return n;
}

/** Parses a numeric option that must be a whole number ≥ 0. */
export function nonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} ${value} is not a whole number`);
  return n;
}
