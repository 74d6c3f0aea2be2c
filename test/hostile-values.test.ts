/**
 * Hostile values: an inventory value must never add a line or an option to the rendered rules.
 *
 * 1. Every hostile value, placed in every spot where an inventory value can reach the output (or the SSH
 *    command line), must be rejected with an InputError (exit code 2) pointing at that value's line, with
 *    messages that stay on one line.
 * 2. Raw YAML tricks (block scalars, folded lines, CRLF, a NUL byte) are fixtures in test/fixtures/hostile/
 *    with `# expect: LINE:COL: substring` lines, like test/fixtures/invalid/.
 * 3. Valid inventories (test/fixtures/hostile/valid-*.yaml and the slot template below) are rendered and
 *    every line of every output file must belong to the iptables-restore grammar fwgen emits.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FwgenError, type Problem } from '../src/errors.js';
import { parseInventory } from '../src/inventory/load-inventory.js';
import { renderProject } from '../src/cli/project.js';
import { renderedText } from '../src/render/render-role.js';
import { inputErrorOf } from './support/input-error.js';
import { builtinTemplatesDir } from '../src/render/templates.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOSTILE_DIR = 'test/fixtures/hostile';

// ---------------------------------------------------------------------------------------------------------
// 1. Every hostile value in every spot.

/**
 * A valid inventory; each {SLOT} is on its own line so a problem can be traced to it. Defaults are raw YAML;
 * hostile values go in as JSON strings (valid YAML double-quoted scalars, escapes included).
 */
const TEMPLATE = `defaults:
  interface: {interface}
  rules_path: {rules_path}
  {defaults_key}: ignored
  ssh:
    host: {defaults_ssh_host}
    user: {ssh_user}
management:
  - {management}
monitoring:
  - from:
      - {monitoring_from}
    ports:
      - {monitoring_port}
trust: {trust}
roles:
  {role_name}:
    public: true
    template: {template}
    ports:
      - {role_port}
    allow:
      - from:
          - {allow_from}
        ports:
          - {allow_port}
    hosts:
      {host_name}: {host_address}
      web2:
        address:
          - {address_list_item}
        ssh:
          host: {host_ssh_host}
          port: {ssh_port}
  metrics:
    hosts:
      metrics1: 198.51.100.41
`;

const DEFAULTS: Record<string, string> = {
  interface: 'eth1',
  rules_path: '/etc/iptables.up.rules',
  defaults_key: '',
  defaults_ssh_host: 'bastion.example.net',
  ssh_user: 'deploy',
  management: '203.0.113.0/28',
  monitoring_from: 'metrics',
  monitoring_port: 'tcp/9100',
  trust: 'fleet',
  role_name: 'web',
  template: 'base.rules.njk',
  role_port: 'tcp/8080',
  allow_from: '192.0.2.0/24',
  allow_port: 'tcp/8443',
  host_name: 'web1',
  host_address: '198.51.100.11',
  address_list_item: '198.51.100.12',
  host_ssh_host: 'web2.example.net',
  ssh_port: '2222',
};

/** The inventory with `slot` set to `value` (JSON-quoted) and every other slot at its default. */
function inventoryWith(slot?: string, value?: string): { text: string; line: number } {
  let line = 0;
  const lines = TEMPLATE.split('\n').map((l, i) =>
    l.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
      if (name === slot) {
        line = i + 1;
        return JSON.stringify(value);
      }
      return DEFAULTS[name]!;
    }),
  );
  // The unknown key in defaults is present only when it is the hostile spot.
  if (slot !== 'defaults_key')
    lines.splice(
      lines.findIndex((l) => l.includes(': ignored')),
      1,
      '',
    );
  return { text: lines.join('\n'), line };
}

const HOSTILE_VALUES: string[] = [
  '1.2.3.4 -j ACCEPT',
  '198.51.100.1\n-A INPUT -j ACCEPT',
  '198.51.100.1\r\n-A INPUT -j ACCEPT',
  '198.51.100.1\r-A INPUT -j ACCEPT',
  '198.51.100.1\u2028-A INPUT -j ACCEPT',
  '198.51.100.1\n',
  'tcp/22\n',
  '0.0.0.0/0 ; rm -rf /',
  '198.51.100.1,0.0.0.0/0',
  'eth1 -j ACCEPT',
  'eth1\t-j ACCEPT',
  'tcp/22 -j ACCEPT',
  'tcp/22 --dport 1:65535',
  'web"; -j ACCEPT',
  "web' -j ACCEPT",
  'web" -j ACCEPT "',
  '$(reboot)',
  '`reboot`',
  'web;reboot',
  'web|reboot',
  '-j ACCEPT',
  '--dport=22',
  '!198.51.100.1',
  '198.51.100.1\u0000',
  'eth1\u0000-j ACCEPT',
  '\u001b[2J\u001b[Hweb',
  'web\u00a0-j ACCEPT',
  '../../etc/passwd',
  '/etc/../root/.ssh/authorized_keys',
  '',
  ' ',
  'a'.repeat(70_000),
  `${'1'.repeat(5000)}.1.1.1`,
  `tcp/${'9'.repeat(5000)}`,
];

const SLOTS = Object.keys(DEFAULTS);

/** Characters that would break a `FILE:LINE:COL: message` line or drive a terminal. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function show(p: Problem): string {
  return `${p.line}:${p.col}: ${p.message.length > 300 ? `${p.message.slice(0, 300)}…` : p.message}`;
}

describe('the slot template', () => {
  it('is a valid inventory with every slot at its default', () => {
    const { text } = inventoryWith();
    const { inventory, warnings } = parseInventory(text, 'template.yaml');
    expect(warnings).toEqual([]);
    expect(inventory.roles.map((r) => r.name)).toEqual(['metrics', 'web']);
  });

  it.each(SLOTS)('slot %s is on its own line', (slot) => {
    const { line } = inventoryWith(slot, DEFAULTS[slot]);
    expect(line).toBeGreaterThan(0);
  });
});

const label = (v: string): string =>
  v.length > 40 ? `${JSON.stringify(v.slice(0, 24))}…(${v.length} chars)` : JSON.stringify(v);

describe.each(SLOTS)('hostile values in %s', (slot) => {
  it.each(HOSTILE_VALUES.map((v) => [label(v), v]))('rejects %s', (_label, value) => {
    const { text, line } = inventoryWith(slot, value);
    const err = inputErrorOf(() => parseInventory(text, 'hostile.yaml'));
    expect(err.exitCode).toBe(2);
    expect(err).toBeInstanceOf(FwgenError);
    const errors = err.problems.filter((p) => p.severity === 'error');
    expect(errors.length).toBeGreaterThan(0);
    // Every problem points at the hostile value's line: it is found, and it causes no noise elsewhere.
    expect(errors.map(show), `problems for ${slot} = ${label(value)} should all be on line ${line}`).toEqual(
      errors.filter((p) => p.line === line).map(show),
    );
    // A problem is one line of plain text, whatever the value held.
    for (const p of err.problems) {
      expect(
        CONTROL.test(p.message),
        `message contains a control character: ${JSON.stringify(p.message.slice(0, 200))}`,
      ).toBe(false);
    }
    expect(err.message.split('\n')).toHaveLength(err.problems.length);
  });
});

// ---------------------------------------------------------------------------------------------------------
// 2. Raw YAML tricks, as fixtures.

interface Expectation {
  line: number;
  col: number;
  text: string;
}

function expectations(text: string): Expectation[] {
  const out: Expectation[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('# expect')) continue;
    const m = /^# expect: (\d+):(\d+): (.+)$/.exec(line);
    if (!m) throw new Error(`malformed expectation line: ${line}`);
    out.push({ line: Number(m[1]), col: Number(m[2]), text: m[3]! });
  }
  return out;
}

const fixtureFiles = readdirSync(join(ROOT, HOSTILE_DIR))
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const hostileFixtures = fixtureFiles.filter((f) => !f.startsWith('valid-'));
const validFixtures = fixtureFiles.filter((f) => f.startsWith('valid-'));

describe('hostile YAML fixtures (test/fixtures/hostile)', () => {
  it.each(hostileFixtures)('%s', (name) => {
    const rel = `${HOSTILE_DIR}/${name}`;
    const text = readFileSync(join(ROOT, rel), 'utf8');
    const expected = expectations(text);
    expect(expected.length, `${rel} has no "# expect:" lines`).toBeGreaterThan(0);
    const err = inputErrorOf(() => parseInventory(text, rel));
    expect(err.exitCode).toBe(2);
    const errors = err.problems.filter((p) => p.severity === 'error');
    const unused = [...errors];
    for (const e of expected) {
      const i = unused.findIndex((p) => p.line === e.line && p.col === e.col && p.message.includes(e.text));
      expect(
        i,
        `expected a problem "${e.line}:${e.col}: …${e.text}…"; fwgen reported:\n${errors.map(show).join('\n')}`,
      ).toBeGreaterThanOrEqual(0);
      unused.splice(i, 1);
    }
    expect(unused.map(show), 'problems that no "# expect:" line accounts for').toEqual([]);
    for (const p of errors)
      expect(CONTROL.test(p.message), `message contains a control character: ${JSON.stringify(p.message)}`).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------------
// 3. Valid inventories render to nothing but rule grammar.

/** A whole rule line, as the brief for fwgen's output states it. */
const LINE =
  /^(\*filter|:[A-Z]+ ACCEPT \[0:0\]|:FWGEN-(INPUT|FORWARD|OUTPUT) - \[0:0\]|COMMIT|-A (FWGEN-)?(INPUT|FORWARD|OUTPUT)( [^"\s]+| "[A-Za-z0-9 ./:#_-]*")+)$/;

const CIDR = /^[0-9a-f.:]+\/[0-9]{1,3}$/;
const IFACE = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,13}[A-Za-z0-9_.@+-]?$/;

/** Each option fwgen emits, with the only arguments it may take. */
const OPTIONS: Record<string, RegExp> = {
  '-s': CIDR,
  '-d': CIDR,
  '-i': IFACE,
  '-p': /^(tcp|udp|icmp|ipv6-icmp)$/,
  '-m': /^(tcp|udp|icmp|icmp6|comment|conntrack|hl|limit)$/,
  '--dport': /^[0-9]{1,5}(:[0-9]{1,5})?$/,
  '--comment': /^"fwgen [A-Za-z0-9 ./:#_-]*"$/,
  '-j': /^(ACCEPT|REJECT|LOG|FWGEN-(INPUT|FORWARD|OUTPUT))$/,
  '--reject-with': /^(icmp-port-unreachable|icmp6-port-unreachable)$/,
  '--ctstate': /^RELATED,ESTABLISHED$/,
  '--icmp-type': /^8$/,
  '--icmpv6-type': /^(128|133|134|135|136)$/,
  '--hl-eq': /^255$/,
  '--limit': /^[0-9]+\/min$/,
  '--log-prefix': /^"fwgen denied: "$/,
  '--log-level': /^[0-7]$/,
};

/** Checks one rule line option by option; returns what is wrong, or undefined. */
function ruleProblem(line: string): string | undefined {
  if (!LINE.test(line)) return 'does not match the rule-line grammar';
  if (!line.startsWith('-A ')) return undefined;
  const tokens = line.match(/"[^"]*"|[^\s"]+/g) ?? [];
  if (tokens.join(' ') !== line) return 'has stray spacing or quotes';
  const seen = new Set<string>();
  for (let i = 2; i < tokens.length; i++) {
    let opt = tokens[i]!;
    if (opt === '!') {
      opt = tokens[++i] ?? '';
      if (!['-i', '-s', '-d'].includes(opt)) return `"!" before ${opt}`;
    }
    if (opt !== '-m' && seen.has(opt)) return `${opt} given twice`;
    seen.add(opt);
    const arg = OPTIONS[opt];
    if (!arg) return `unknown option ${JSON.stringify(opt)}`;
    const value = tokens[++i];
    if (value === undefined || !arg.test(value)) return `bad argument ${JSON.stringify(value)} for ${opt}`;
    if ((opt === '-s' || opt === '-d') && isIP(value.split('/')[0]!) === 0) return `${value} is not an address`;
    if (opt === '--comment' && value.length - 2 > 255) return 'comment longer than iptables allows (255)';
  }
  return undefined;
}

/** Every problem with the files' text: structure, comments, rule lines. */
function outputProblems(files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [path, text] of files) {
    if (!text.endsWith('\n')) out.push(`${path}: does not end with a newline`);
    if (/[\u0000\r]/.test(text)) out.push(`${path}: contains NUL or CR`);
    const lines = text.replace(/\n$/, '').split('\n');
    const rules = lines.filter((l) => !l.startsWith('#'));
    if (rules[0] !== '*filter') out.push(`${path}: first non-comment line is not *filter`);
    if (rules.at(-1) !== 'COMMIT' || rules.filter((l) => l === 'COMMIT').length !== 1)
      out.push(`${path}: does not end with the only COMMIT`);
    if (rules.filter((l) => l === '*filter').length !== 1) out.push(`${path}: more than one table`);
    lines.forEach((l, i) => {
      if (l.startsWith('#')) {
        if (!/^# [\x20-\x7e]*$/.test(l))
          out.push(`${path}:${i + 1}: comment line with unexpected characters: ${JSON.stringify(l)}`);
        return;
      }
      const why = ruleProblem(l);
      if (why) out.push(`${path}:${i + 1}: ${why}: ${JSON.stringify(l)}`);
    });
  }
  return out;
}

let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fwgen-hostile-'));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Renders an inventory file in memory with the built-in templates; nothing is written. */
function renderFile(inventory: string): Map<string, string> {
  const project = renderProject({ inventory, out: join(tmp, 'out-never-written'), templates: builtinTemplatesDir });
  return new Map(project.files.map((f) => [f.path, renderedText(f)]));
}

describe('rendered output of valid inventories is pure rule grammar', () => {
  it('the grammar check rejects smuggled lines and options', () => {
    const good =
      '-A INPUT -s 198.51.100.11/32 -p tcp -m tcp --dport 22 -m comment --comment "fwgen web ports tcp/22" -j ACCEPT';
    expect(ruleProblem(good)).toBeUndefined();
    for (const bad of [
      '-A INPUT -s 198.51.100.11/32 -j ACCEPT -j DROP',
      '-A INPUT -s 1.2.3.4 -j ACCEPT',
      '-A INPUT -s 198.51.100.11/32,0.0.0.0/0 -j ACCEPT',
      '-A INPUT -i eth1 -j ACCEPT -i eth2',
      '-A INPUT -m comment --comment "web"; -j ACCEPT',
      '-A INPUT -m comment --comment "fwgen $(reboot)" -j ACCEPT',
      '-A INPUT -p tcp --sport 1 -j ACCEPT',
      '-I INPUT -j ACCEPT',
      '-A INPUT  -j ACCEPT',
      '-F',
    ]) {
      expect(ruleProblem(bad), bad).toBeDefined();
    }
    const file = new Map([['web/iptables.up.rules', '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n-A INPUT -j ACCEPT\n']]);
    expect(outputProblems(file)).not.toEqual([]);
  });

  it.each(validFixtures)('%s', (name) => {
    const files = renderFile(join(ROOT, HOSTILE_DIR, name));
    expect(files.size).toBeGreaterThan(0);
    expect(outputProblems(files)).toEqual([]);
  });

  it('the slot template', () => {
    const file = join(tmp, 'template.yaml');
    writeFileSync(file, inventoryWith().text);
    const files = renderFile(file);
    expect([...files.keys()].sort()).toEqual([
      'metrics/ip6tables.up.rules',
      'metrics/iptables.up.rules',
      'web/ip6tables.up.rules',
      'web/iptables.up.rules',
    ]);
    expect(outputProblems(files)).toEqual([]);
  });

  it('an inventory file whose name holds a newline cannot add a rule line', () => {
    // Not an inventory value, but the file name reaches every header comment.
    const dir = mkdtempSync(join(tmp, 'nl-'));
    const file = join(dir, 'inv\n-A INPUT -j ACCEPT\n#.yaml');
    writeFileSync(file, inventoryWith().text);
    let files: Map<string, string>;
    try {
      files = renderFile(file);
    } catch (err) {
      // Refusing such a name is fine too, as a clean usage error.
      expect(err).toBeInstanceOf(FwgenError);
      expect((err as FwgenError).exitCode).toBe(2);
      return;
    }
    expect(outputProblems(files)).toEqual([]);
  });
});
