import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Script, createContext, type Context } from 'node:vm';
import { TemplateError } from '../errors.js';
import type { TemplateSet } from './templates.js';

/**
 * Role templates are Nunjucks, and Nunjucks compiles a template to JavaScript: run as is, any template
 * reaches the Function constructor (`range.constructor("...")()`) and with it `process`, the file system
 * and whatever the account rendering can do (the fleet's root SSH keys at `ship` time). Here templates
 * are compiled on this side (parsing runs nothing a template says) and the compiled code runs in a V8
 * context of its own:
 *
 * - the context holds no object of this realm: its global object has no prototype, the Nunjucks runtime
 *   is loaded inside it (the package's slim browser build), and the render data crosses as JSON text,
 *   parsed inside; results come back as JSON text. So `x.constructor.constructor` is the context's own
 *   Function, never Node's, and there is no `process`, `require`, `import()`, timer or I/O to reach;
 * - the context cannot make code from strings (`codeGeneration: { strings: false, wasm: false }`): its
 *   Function constructor and eval throw, so even its own Function is no way out;
 * - the names such attempts use (`constructor`, `__proto__`, `process`, ...) are refused when the
 *   template is compiled and again by the runtime's lookups (for computed names), so a template that
 *   tries fails with its file and line rather than quietly rendering something else;
 * - the render data is frozen, so one role's template cannot change what another sees; the `random`
 *   filter is gone and `range()` is bounded: rendering gives the same bytes every time;
 * - all templates of a run render in one call with a deadline, so a template that loops forever fails.
 */

/** One template render: the template's name (`roles/web.njk`) and its context, without `fleet`. */
export interface TemplateJob {
  readonly name: string;
  /** What the error message says is being rendered: `role web (ipv4)`. */
  readonly label: string;
  readonly family: string;
  readonly context: object;
}

/** Renders role templates in the sandbox. */
export interface TemplateSandbox {
  /** Renders every job; `fleets` (large, the same for every role of a family) is passed once per family. */
  renderAll(jobs: readonly TemplateJob[], fleets: Readonly<Record<string, unknown>>): string[];
}

/** How long all role templates of a run may take together. */
export const TEMPLATE_DEADLINE_MS = 60_000;

/** What leads from a value to its prototype or its constructor, and so to code. */
const INTERNALS = [
  'constructor',
  '__proto__',
  'prototype',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
  '__lookupSetter__',
];

/** Members no template may read (`x.constructor`, `x["__proto__"]`, `f.caller`). */
export const BLOCKED_MEMBERS = [...INTERNALS, 'caller', 'callee', 'arguments'];

/**
 * Variables no template may use: the internals, and the names of Node's and JavaScript's ways to code.
 * None of them exists for a template; refusing them makes an attempt fail instead of print nothing.
 */
export const BLOCKED_VARIABLES = [
  ...INTERNALS,
  'process',
  'require',
  'module',
  'global',
  'globalThis',
  'Function',
  'eval',
  'Buffer',
  '__dirname',
  '__filename',
];

const require = createRequire(import.meta.url);

/** A context for templates: no object of this realm in it, no code from strings, Nunjucks' runtime loaded and hardened. */
export interface TemplateContext {
  /** The context's global object, as this side sees it (only strings and numbers cross it). */
  readonly global: Record<string, unknown>;
  readonly context: Context;
}

/** Makes a fresh template context. */
export function createTemplateContext(): TemplateContext {
  // A global object made here with Object.prototype would lead back to this realm's Function.
  const global = Object.create(null) as Record<string, unknown>;
  const context = createContext(global, { name: 'fwgen templates', codeGeneration: { strings: false, wasm: false } });
  const slimPath = require.resolve('nunjucks/browser/nunjucks-slim.js');
  new Script(readFileSync(slimPath, 'utf8'), { filename: slimPath }).runInContext(context);
  new Script(BOOTSTRAP, { filename: 'fwgen-template-sandbox.js' }).runInContext(context);
  return { global, context };
}

/** Compiles every template of the set and loads them into a fresh template context. */
export function createTemplateSandbox(templates: TemplateSet, deadlineMs = TEMPLATE_DEADLINE_MS): TemplateSandbox {
  const { global, context } = createTemplateContext();
  const paths = new Map<string, string>();
  for (const [name, { src, path }] of templates.sources) {
    paths.set(name, path);
    register(context, name, path, src, templates.sources);
  }
  const run = new Script('__fwgenRenderAll()', { filename: 'fwgen-template-sandbox.js' });
  return {
    renderAll(jobs, fleets) {
      if (jobs.length === 0) return [];
      global.__fwgenInput = JSON.stringify({ jobs, fleets });
      let out: unknown;
      try {
        out = run.runInContext(context, { timeout: deadlineMs });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw err;
        throw deadlineError(deadlineMs, paths, jobs[global.__fwgenCurrent as number]);
      } finally {
        delete global.__fwgenInput;
      }
      if (typeof out !== 'string') throw new Error('bug: the template sandbox returned no text');
      const results = JSON.parse(out) as SandboxResult[];
      return results.map((r, i) => {
        if (r.ok) return r.text;
        throw renderError(jobs[i]!, r, paths);
      });
    },
  };
}

function deadlineError(ms: number, paths: ReadonlyMap<string, string>, job: TemplateJob | undefined): TemplateError {
  const at = job ? `${paths.get(job.name) ?? job.name}: rendering ${job.label}: ` : '';
  return new TemplateError(
    `${at}role templates did not finish within ${ms / 1000} s`,
    'a template loops over something huge or forever; templates should only print the values fwgen gives them',
  );
}

type SandboxResult =
  { ok: true; text: string } | { ok: false; message: string; line?: number; col?: number; compile?: boolean };

/**
 * Compiles one template here and hands the compiled code to the sandbox. A template that does not parse,
 * or that names a blocked name anywhere (even in a branch never taken), fails when a role uses it.
 */
function register(
  context: Context,
  name: string,
  path: string,
  src: string,
  known: ReadonlyMap<string, unknown>,
): void {
  const args = `${JSON.stringify(name)}, ${JSON.stringify(path)}`;
  let code: string;
  try {
    code = compileTemplate(src, path, known);
  } catch (err) {
    // Nunjucks' parser counts lines and columns from 1.
    const e = err as { message?: string; lineno?: number; colno?: number };
    const at = e.lineno ? `${path}:${e.lineno}${e.colno ? `:${e.colno}` : ''}` : path;
    const message = `${at}: ${stripNunjucksPrefix(String(e.message)).replace(/\s+/g, ' ').trim()}`;
    new Script(`__fwgenRegister(${args}, null, ${JSON.stringify(message)});`).runInContext(context);
    return;
  }
  // The compiled code runs only there, inside the context: it can reach nothing but the context's own objects.
  const wrapped = `__fwgenRegister(${args}, function () {\n${code}\n});`;
  new Script(wrapped, { filename: path }).runInContext(context);
}

const PARSE_OPTIONS = { autoescape: false, throwOnUndefined: true, trimBlocks: false, lstripBlocks: false };

/** A node of Nunjucks' syntax tree: `fields` names the properties holding its children. */
interface TemplateNode {
  readonly typename: string;
  readonly lineno: number;
  readonly colno: number;
  readonly fields: readonly string[];
  readonly value?: unknown;
  readonly [field: string]: unknown;
}

/** Nunjucks' code generator, as far as it is used and extended here. */
interface NunjucksCompiler {
  compile(ast: TemplateNode): void;
  getCode(): string;
  _emit(code: string): void;
  _emitLine(code: string): void;
  compileFilter(node: TemplateNode, frame: unknown): void;
  _compileGetTemplate(node: TemplateNode, frame: unknown, eager: boolean, ignoreMissing: boolean): string;
}

interface NunjucksInternals {
  parser: { parse(src: string, extensions: unknown[], opts: object): TemplateNode };
  transformer: { transform(ast: TemplateNode, asyncFilters: string[], name: string): TemplateNode };
  Compiler: new (name: string, throwOnUndefined: boolean) => NunjucksCompiler;
}

let internals: NunjucksInternals | undefined;
/** Only Nunjucks' parser and code generator are loaded here, not its environment, loaders or runtime. */
function nunjucksInternals(): NunjucksInternals {
  return (internals ??= {
    parser: require('nunjucks/src/parser') as NunjucksInternals['parser'],
    transformer: require('nunjucks/src/transformer') as NunjucksInternals['transformer'],
    Compiler: positioned((require('nunjucks/src/compiler') as { Compiler: NunjucksInternals['Compiler'] }).Compiler),
  });
}

/**
 * Nunjucks records where a template is (for error messages) at calls and outputs only; these record it
 * at filters and at the tags that load a template too, so their errors point at their own line.
 */
function positioned(Base: NunjucksInternals['Compiler']): NunjucksInternals['Compiler'] {
  const at = (node: TemplateNode): string => `lineno = ${Number(node.lineno)}, colno = ${Number(node.colno)}`;
  return class extends Base {
    override compileFilter(node: TemplateNode, frame: unknown): void {
      this._emit(`(${at(node)}, `);
      super.compileFilter(node, frame);
      this._emit(')');
    }
    override _compileGetTemplate(node: TemplateNode, frame: unknown, eager: boolean, ignoreMissing: boolean): string {
      this._emitLine(`${at(node)};`);
      return super._compileGetTemplate(node, frame, eager, ignoreMissing);
    }
  };
}

/** Parses, checks and compiles a template to the JavaScript Nunjucks runs; throws with a position on a problem. */
function compileTemplate(src: string, path: string, known: ReadonlyMap<string, unknown>): string {
  const { parser, transformer, Compiler } = nunjucksInternals();
  const ast = parser.parse(src, [], PARSE_OPTIONS);
  checkNames(ast, known);
  const compiler = new Compiler(path, PARSE_OPTIONS.throwOnUndefined);
  compiler.compile(transformer.transform(ast, [], path));
  return compiler.getCode();
}

/**
 * Refuses a blocked name used as a variable (`{{ process }}`) or a member (`x.constructor`,
 * `x["__proto__"]`), and a literal template name that is not a template of the set (`"/etc/passwd"`).
 */
function checkNames(node: TemplateNode, known: ReadonlyMap<string, unknown>): void {
  // Children first: in `a.b.c` the inner lookup `a.b` comes first in the text.
  for (const field of node.fields) {
    const child = node[field];
    for (const c of Array.isArray(child) ? child : [child]) if (isNode(c)) checkNames(c, known);
  }
  const [name, blocked] =
    node.typename === 'Symbol'
      ? [node, BLOCKED_VARIABLES]
      : node.typename === 'LookupVal'
        ? [node.val, BLOCKED_MEMBERS]
        : [undefined, []];
  if (isNode(name) && typeof name.value === 'string' && blocked.includes(name.value)) {
    throw problemAt(name, `a template cannot use "${name.value}": ${BLOCKED_WHY}`);
  }
  const loaded = LOADS.includes(node.typename) ? node.template : undefined;
  if (
    isNode(loaded) &&
    loaded.typename === 'Literal' &&
    typeof loaded.value === 'string' &&
    !known.has(loaded.value) &&
    !node.ignoreMissing
  ) {
    const names = [...known.keys()].sort().join(', ');
    throw problemAt(loaded, `no template "${loaded.value}" (expected one of the templates folders' files: ${names})`);
  }
  if (node.typename === 'Filter' && isNode(node.name) && node.name.value === 'random') {
    throw problemAt(node.name, RANDOM_WHY);
  }
}

/** The tags that load another template by name. */
const LOADS = ['Extends', 'Include', 'Import', 'FromImport'];

/** An error at a syntax tree node, whose positions count from 0, in the parser's form (from 1). */
const problemAt = (node: TemplateNode, message: string): Error =>
  Object.assign(new Error(message), { lineno: node.lineno + 1, colno: node.colno + 1 });

const isNode = (n: unknown): n is TemplateNode =>
  typeof n === 'object' && n !== null && typeof (n as TemplateNode).typename === 'string';

/** The longest list `range()` makes. */
const MAX_RANGE = 100_000;

const RANDOM_WHY = 'the random filter is not available: rendering must give the same bytes every time';

const BLOCKED_WHY = 'templates print values, they cannot reach code';

function renderError(
  job: TemplateJob,
  r: Extract<SandboxResult, { ok: false }>,
  paths: Map<string, string>,
): TemplateError {
  if (r.compile) return new TemplateError(`${r.message} (rendering ${job.label})`, 'fix the template');
  // Nunjucks names the template an error happened in as "(PATH) [Line L, Column C]".
  const path = [...paths.values()].find((p) => r.message.startsWith(`(${p})`)) ?? paths.get(job.name) ?? job.name;
  const at = r.line ? `${path}:${r.line}${r.col ? `:${r.col}` : ''}` : path;
  const message = stripNunjucksPrefix(r.message).replace(/\s+/g, ' ').trim();
  return new TemplateError(
    `${at}: rendering ${job.label}: ${message}`,
    'templates can only loop over and print the values fwgen gives them (see Templates in the README)',
  );
}

/** Nunjucks' "(path) [Line L, Column C]" prefixes, one per template the error passed through, and "Error: ". */
function stripNunjucksPrefix(message: string): string {
  const prefix = /^\s*(Template render error: )?\([^\n]*?\)( \[Line \d+(, Column \d+)?\])?[ \t]*(\n|$)/;
  let rest = message;
  while (prefix.test(rest)) rest = rest.replace(prefix, '');
  return rest.trim().replace(/^(Template render error: )?Error: /, '');
}

/**
 * Runs inside the context, after the Nunjucks runtime: hardens the runtime's lookups, keeps the compiled
 * templates, and renders jobs from the JSON input. Plain JavaScript in a string, because it must be
 * evaluated there (a function of this module would carry this realm's objects).
 */
const BOOTSTRAP = `'use strict';
(function (global) {
  const nunjucks = global.nunjucks;
  delete global.nunjucks;
  delete global.console;
  const runtime = nunjucks.runtime;
  const lib = nunjucks.lib;
  const MEMBERS = new Set(${JSON.stringify(BLOCKED_MEMBERS)});
  const VARIABLES = new Set(${JSON.stringify(BLOCKED_VARIABLES)});
  const refuse = (name) => {
    throw new Error('a template cannot use "' + name + '": ${BLOCKED_WHY}');
  };
  const memberLookup = runtime.memberLookup;
  runtime.memberLookup = function (obj, val) {
    const key = String(val);
    if (MEMBERS.has(key)) refuse(key);
    return memberLookup(obj, key);
  };
  const contextOrFrameLookup = runtime.contextOrFrameLookup;
  runtime.contextOrFrameLookup = function (context, frame, name) {
    if (VARIABLES.has(name)) refuse(name);
    return contextOrFrameLookup(context, frame, name);
  };
  // Compiled templates count lines and columns from 0 where they catch an error; report them from 1.
  runtime.handleError = function (error, lineno, colno) {
    if (error && error.lineno) return error;
    return new lib.TemplateError(error, (lineno || 0) + 1, (colno || 0) + 1);
  };
  const compiled = Object.create(null);
  global.__fwgenRegister = function (name, path, make, error) {
    compiled[name] = { path: path, obj: make ? make() : null, error: error };
  };
  const loader = {
    getSource(name) {
      const t = compiled[name];
      if (!t) return null;
      if (t.error) {
        const e = new Error(t.error);
        e.fwgenCompile = true;
        throw e;
      }
      return { src: { type: 'code', obj: t.obj }, path: t.path, noCache: false };
    },
  };
  const env = new nunjucks.Environment(loader, {
    autoescape: false,
    throwOnUndefined: true,
    trimBlocks: false,
    lstripBlocks: false,
    dev: true,
  });
  // range() builds its whole list at once: a huge one would exhaust memory before the deadline.
  const range = env.getGlobal('range');
  env.addGlobal('range', function (start, stop, step) {
    const from = stop === undefined ? 0 : start;
    const to = stop === undefined ? start : stop;
    const by = step === undefined ? 1 : step;
    if (Math.abs((to - from) / by) > ${MAX_RANGE}) {
      throw new Error('range() of more than ${MAX_RANGE} numbers: a template prints the values of one role');
    }
    return range.apply(this, arguments);
  });
  env.addFilter('random', function () {
    throw new Error('${RANDOM_WHY}');
  });
  const freeze = (value) => {
    if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
      Object.freeze(value);
      for (const key of Object.keys(value)) freeze(value[key]);
    }
    return value;
  };
  const failure = (e) => {
    const cause = e && e.cause;
    if ((e && e.fwgenCompile) || (cause && cause.fwgenCompile)) {
      return { ok: false, compile: true, message: String((e.fwgenCompile ? e : cause).message) };
    }
    const line = e && typeof e.lineno === 'number' ? e.lineno : undefined;
    const col = e && typeof e.colno === 'number' ? e.colno : undefined;
    return { ok: false, message: String(e && e.message), line: line, col: col };
  };
  global.__fwgenRenderAll = function () {
    const input = JSON.parse(global.__fwgenInput);
    const fleets = freeze(input.fleets);
    const results = [];
    for (let i = 0; i < input.jobs.length; i++) {
      global.__fwgenCurrent = i;
      const job = input.jobs[i];
      const ctx = job.context;
      ctx.fleet = fleets[job.family];
      try {
        results.push({ ok: true, text: String(env.render(job.name, freeze(ctx))) });
      } catch (e) {
        try {
          results.push(failure(e));
        } catch (_) {
          results.push({ ok: false, message: 'the template failed with an error that cannot be shown' });
        }
      }
    }
    return JSON.stringify(results);
  };
})(this);
`;
