/**
 * Issue 16, finding 1: a role template cannot run code. Each payload below is what an attacker with
 * write access to templates/ would try; each must fail `render` with exit 2, naming the template and
 * the line, and must have no effect (the marker files they would write stay absent). The context the
 * compiled templates run in is also attacked directly, as if Nunjucks' compiler let JavaScript through.
 * The last part reproduces the issue's proof: a template that tries to patch rendered/ or to behave
 * differently under `ship` fails render, ship and status alike, and leaves rendered/ as committed.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProject } from '../src/cli/project.js';
import { FwgenError, TemplateError } from '../src/errors.js';
import { renderedText } from '../src/render/render-role.js';
import { createTemplateContext, createTemplateSandbox } from '../src/render/template-sandbox.js';
import { loadTemplates } from '../src/render/templates.js';
import { runFwgen } from './support/run-cli.js';

let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fwgen-sandbox-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A project: the example inventory, rendered/ as rendered now, and templates/roles/web.njk. */
function project(name: string, webTemplate?: string): string {
  const dir = join(tmp, name);
  cpSync('inventory', join(dir, 'inventory'), { recursive: true });
  cpSync('rendered', join(dir, 'rendered'), { recursive: true });
  mkdirSync(join(dir, 'templates/roles'), { recursive: true });
  if (webTemplate !== undefined) writeFileSync(join(dir, 'templates/roles/web.njk'), webTemplate);
  return dir;
}

const extra = (body: string): string => `{% extends "base.rules.njk" %}\n{% block extra -%}\n${body}\n{% endblock %}\n`;

/** The error rendering `dir` throws. */
function renderError(dir: string): FwgenError {
  try {
    renderProject({ inventory: join(dir, 'inventory/inventory.yaml'), out: join(dir, 'rendered') });
  } catch (err) {
    if (err instanceof FwgenError) return err;
    throw err;
  }
  throw new Error('the template rendered');
}

describe('template payloads fail render with exit 2 at their line, and do nothing', () => {
  const marker = (): string => join(tmp, 'PWNED');
  const write = (): string => `.mainModule.require("fs").writeFileSync(${JSON.stringify(marker())}, "x")`;
  const payloads: [string, () => string, RegExp][] = [
    ['range.constructor', () => `{{ range.constructor("return process")()${write()} }}`, /cannot use "constructor"/],
    [
      '"".constructor.constructor',
      () => `{{ "".constructor.constructor("return process")()${write()} }}`,
      /cannot use "constructor"/,
    ],
    ['cycler global', () => `{{ cycler.constructor("return process")() }}`, /cannot use "constructor"/],
    ['joiner global', () => `{{ joiner().constructor.constructor("return process")() }}`, /cannot use "constructor"/],
    ['__proto__ member', () => `{{ range.__proto__.constructor("return process")() }}`, /cannot use "__proto__"/],
    ['__proto__ subscript', () => `{{ hosts["__proto__"] }}`, /cannot use "__proto__"/],
    [
      'a computed name',
      () => `{% set k = "constr" ~ "uctor" %}{{ range[k]("return process")()${write()} }}`,
      /cannot use "constructor"/,
    ],
    ['constructor as a variable', () => `{{ constructor("x") }}`, /cannot use "constructor"/],
    [
      'process.argv',
      () => `{% if process and "ship" in process.argv %}-A FWGEN-INPUT -s 203.0.113.66/32 -j ACCEPT{% endif %}`,
      /cannot use "process"/,
    ],
    ['require', () => `{{ require("fs") }}`, /cannot use "require"/],
    ['in a branch never taken', () => `{% if false %}{{ range.caller }}{% endif %}`, /cannot use "caller"/],
    ['include of /etc/passwd', () => `{% include "/etc/passwd" %}`, /no template "\/etc\/passwd"/],
    [
      'include outside templates/',
      () => `{% include "../inventory/inventory.yaml" %}`,
      /no template "\.\.\/inventory\/inventory\.yaml"/,
    ],
    ['import of a file', () => `{% import "/etc/hostname" as h %}`, /no template "\/etc\/hostname"/],
    ['include by a computed name', () => `{% set n = "/etc/" ~ "passwd" %}{% include n %}`, /not found: \/etc\/passwd/],
    ['the random filter', () => `{{ ["a", "b"] | random }}`, /random filter is not available/],
    ['changing shared data', () => `{{ fleet.reverse() }}`, /read only/],
    ['a huge range', () => `{% for i in range(0, 1000000000) %}{% endfor %}`, /range\(\) of more than/],
  ];

  it.each(payloads)('%s', (name, payload, why) => {
    const dir = project(`payload-${name.replace(/\W+/g, '-')}`, extra(payload()));
    const err = renderError(dir);
    expect(err).toBeInstanceOf(TemplateError);
    expect(err.exitCode).toBe(2);
    // The payload is on line 3 of the template (after extends and block).
    expect(err.message).toMatch(new RegExp(`^${join(dir, 'templates/roles/web.njk')}:3(:\\d+)?: `));
    expect(err.message).toMatch(why);
    expect(existsSync(marker())).toBe(false);
  });

  it('a template that does not parse names its file, line and column', () => {
    const err = renderError(project('syntax', extra('{{ x.y }')));
    expect(err.message).toMatch(/templates\/roles\/web\.njk:3:8: expected variable end/);
    expect(err.exitCode).toBe(2);
  });
});

describe('the context compiled templates run in, attacked directly', () => {
  const { context, global } = createTemplateContext();
  const run = (code: string): unknown => new Script(code).runInContext(context);

  it('has no process, require, module, Buffer or console, and no way to make code from strings', () => {
    expect(run('[typeof process, typeof require, typeof module, typeof Buffer, typeof console].join()')).toBe(
      'undefined,undefined,undefined,undefined,undefined',
    );
    expect(() => run('Function("return 1")()')).toThrow(/Code generation from strings disallowed/);
    expect(() => run('eval("1")')).toThrow(/Code generation from strings disallowed/);
    expect(() => run('new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]))')).toThrow(
      /Wasm code generation disallowed/,
    );
  });

  it('holds no object of this realm: every constructor chain ends at the context Function, which cannot make code', () => {
    for (const chain of [
      'this.constructor.constructor',
      '(function () { return this; })().constructor.constructor',
      'Object.getPrototypeOf(globalThis).constructor.constructor',
      '__fwgenRenderAll.constructor',
      '__fwgenRegister.constructor',
    ]) {
      expect(() => run(`${chain}("return process")()`), chain).toThrow(/Code generation from strings disallowed/);
    }
    expect(global.Object).toBeUndefined();
    expect(Object.getPrototypeOf(global)).toBeNull();
  });

  it('cannot import modules', async () => {
    const result = run('import("node:fs").then(() => "imported", (e) => "refused: " + e.code)');
    expect(await (result as Promise<string>)).toMatch(/^refused/);
  });
});

describe('templates still do what templates are for', () => {
  it('loops, conditions, macros with caller, includes and filters render as before', () => {
    const dir = project('features');
    writeFileSync(
      join(dir, 'templates/roles/web.njk'),
      [
        '{% extends "base.rules.njk" %}',
        '{% import "macros.njk" as m %}',
        '{% block extra -%}',
        '{% for p in ports | sort(false, false, "dport") %}{{ m.accept(p.dport) }}',
        '{% endfor %}{% call m.wrap() %}{{ role | upper }}{% endcall %}',
        '{% include "note.njk" %}',
        '{% if family == "ipv4" %}-A FWGEN-INPUT -s {{ management | first }} -p udp -m udp --dport 161 -j ACCEPT{% endif %}',
        '{% endblock %}',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'templates/macros.njk'),
      '{% macro accept(port) %}-A FWGEN-INPUT -p tcp -m tcp --dport {{ port | int + 10000 }} -j ACCEPT{% endmacro %}' +
        '{% macro wrap() %}-A FWGEN-OUTPUT -m comment --comment "{{ caller() }}" -j ACCEPT{% endmacro %}',
    );
    writeFileSync(join(dir, 'templates/note.njk'), '# {{ hosts | join(",") }} {{ fleet | length }} fleet CIDRs\n');
    const files = renderProject({ inventory: join(dir, 'inventory/inventory.yaml'), out: join(dir, 'rendered') }).files;
    const web = renderedText(files.find((f) => f.path === 'web/iptables.up.rules')!);
    expect(web).toContain('-A FWGEN-INPUT -s 203.0.113.0/28 -p udp -m udp --dport 161 -j ACCEPT');
    expect(web).toContain('-A FWGEN-OUTPUT -m comment --comment WEB -j ACCEPT');
    const v6 = renderedText(files.find((f) => f.path === 'web/ip6tables.up.rules')!);
    expect(v6).not.toContain('--dport 161');
  });

  it('a template that never ends fails at the deadline, naming the template', () => {
    const dir = project(
      'forever',
      extra('{% for i in range(0, 100000) %}{% for j in range(0, 100000) %}{% endfor %}{% endfor %}'),
    );
    const sandbox = createTemplateSandbox(loadTemplates(join(dir, 'templates')), 300);
    const started = Date.now();
    const job = { name: 'roles/web.njk', label: 'role web (ipv4)', family: 'ipv4', context: { role: 'web' } };
    expect(() => sandbox.renderAll([job], { ipv4: [] })).toThrow(
      /templates\/roles\/web\.njk: rendering role web \(ipv4\): role templates did not finish within 0\.3 s/,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe("the issue's proof: a template cannot patch rendered/ or ship something else", () => {
  // Under render it prints nothing; it tries to rewrite rendered/web/iptables.up.rules with an extra rule,
  // and under ship to emit that rule: the attack of the issue, which went live with a clean git status.
  const BACKDOOR = '-A FWGEN-INPUT -s 203.0.113.66/32 -j ACCEPT';
  const proof = (rendered: string): string =>
    extra(
      [
        `{% set fs = range.constructor("return process")().mainModule.require("fs") %}`,
        `{{ fs.appendFileSync(${JSON.stringify(join(rendered, 'web/iptables.up.rules'))}, "${BACKDOOR}\\n") }}`,
        `{% if "ship" in process.argv %}${BACKDOOR}{% endif %}`,
      ].join('\n'),
    );
  const snapshot = (dir: string): Record<string, string> =>
    Object.fromEntries(
      readdirSync(join(dir, 'rendered'), { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => {
          const path = join(e.parentPath, e.name);
          return [path, readFileSync(path, 'utf8')];
        }),
    );

  it('render --check, ship --dry-run and status all fail with exit 2 naming the template; rendered/ is untouched', async () => {
    const dir = project('proof');
    const before = snapshot(dir);
    writeFileSync(join(dir, 'templates/roles/web.njk'), proof(join(dir, 'rendered')));
    for (const args of [
      ['render', '--check'],
      ['render'],
      ['ship', '--role', 'all', '--dry-run'],
      ['status', '--role', 'all'],
    ]) {
      const r = await runFwgen(dir, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/templates\/roles\/web\.njk:3:\d+: a template cannot use "constructor"/);
      expect(r.stderr).not.toMatch(/connect|ssh:/i);
    }
    expect(snapshot(dir)).toEqual(before);
    expect(Object.values(snapshot(dir)).join('')).not.toContain('203.0.113.66');
  });
});
