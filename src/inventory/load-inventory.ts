import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import jsYaml from 'js-yaml';
import { InputError, UsageError, type Problem } from '../errors.js';
import { parseNet, sortNets } from './addresses.js';
import {
  DEFAULT_PRESERVE,
  type AgentSettings,
  type AllowRule,
  type ForwardMode,
  type Host,
  type Inventory,
  type Net,
  type PortSpec,
  type Role,
  type SourceRef,
  type SetsMode,
  type SshSettings,
  type Trust,
} from './model.js';
import { parsePort, sortPorts } from './ports.js';
import { globMatcher } from '../util/glob.js';
import { checkSchema } from './schema-check.js';
import { checkAliases } from './yaml-aliases.js';
import { formatPath, YamlLocator, type PathSegment } from './yaml-positions.js';

/** The inventory as written, after the schema has accepted its shape. */
interface RawSsh {
  host?: string;
  user?: string;
  port?: number;
  identity?: string;
  known_hosts?: string;
  sudo?: boolean;
  jump?: string;
  source?: string;
  config?: string;
}
interface RawRule {
  from: string[];
  ports: string[];
}
interface RawHost {
  address: string | string[];
  ssh?: RawSsh;
}
interface RawRole {
  public?: boolean;
  forward?: ForwardMode;
  ports?: string[];
  allow?: RawRule[];
  template?: string;
  hosts: Record<string, string | string[] | RawHost> | null;
}
interface RawAgent {
  origin: string | string[];
  signers: string[];
  every?: number;
  expires?: string;
}
interface RawInventory {
  agent?: RawAgent;
  defaults?: {
    interface?: string;
    rules_path?: string;
    rules_path_unusual?: boolean;
    forward?: ForwardMode;
    ssh?: RawSsh;
  };
  management?: string[];
  preserve?: string[];
  monitoring?: RawRule[];
  trust?: Trust;
  sets?: SetsMode;
  roles: Record<string, RawRole>;
}

/** Result of loading: the inventory and any warnings (errors are thrown as one InputError). */
export interface LoadedInventory {
  inventory: Inventory;
  warnings: Problem[];
  /** Where a value is written, for problems later stages find (parses the text again, on first use). */
  locate: Locate;
}

/** Finds the position of the value at a JSON path of the inventory. */
export type Locate = (path: readonly PathSegment[]) => { line: number; col: number };

const DEFAULT_SSH: SshSettings = {
  host: '',
  user: 'root',
  port: 22,
  knownHosts: '~/.ssh/known_hosts',
  sudo: false,
  written: [],
};

/** Reads, validates and normalizes an inventory file; throws InputError listing every problem. */
export function loadInventory(file: string): LoadedInventory {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read inventory ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      'pass the inventory with -i PATH',
    );
  }
  return parseInventory(text, file);
}

/** Validates and normalizes inventory text; `file` is used in messages. */
export function parseInventory(text: string, file: string): LoadedInventory {
  const report = new Reporter(file, () => new YamlLocator(text));
  const data = parseYaml(text, file);
  checkAliases(data, text, file);
  for (const issue of checkSchema(data)) report.error(issue.path, issue.message, issue.atKey);
  if (report.errors.length > 0) throw new InputError(inFileOrder(report.errors));
  const inventory = normalize(data as RawInventory, file, report);
  if (report.errors.length > 0) throw new InputError(inFileOrder(report.errors));
  return { inventory, warnings: inFileOrder(report.warnings), locate: (path) => report.positionOf(path) };
}

const require = createRequire(import.meta.url);

/**
 * Parses with js-yaml (fast: a 10,000-host inventory in a fraction of the time); the `yaml` package,
 * which keeps positions, is loaded only when there is a problem to point at.
 */
function parseYaml(text: string, file: string): unknown {
  try {
    return jsYaml.load(text, { schema: jsYaml.CORE_SCHEMA, filename: file });
  } catch (err) {
    const problems = yamlSyntaxProblems(text, file);
    if (problems.length === 0) {
      const mark = (err as jsYaml.YAMLException).mark;
      const reason = (err as jsYaml.YAMLException).reason ?? String(err);
      const at = positionOf(text, mark?.position ?? 0);
      problems.push({ file, ...at, message: `YAML syntax error: ${firstLine(reason)}`, severity: 'error' });
    }
    throw new InputError(problems);
  }
}

/**
 * The `yaml` package's errors, one per mistake: a tab used as indentation makes the parser report
 * follow-on errors (implicit keys, sequence items) that only repeat it, so when there are tab errors
 * only those are reported; a duplicated key names the key and where it first appeared.
 */
function yamlSyntaxProblems(text: string, file: string): Problem[] {
  const { LineCounter, parseDocument, visit, isScalar } = require('yaml') as typeof import('yaml');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const at = (offset: number) => ({ file, ...lines.linePos(offset), severity: 'error' as const });
  const tabs = doc.errors.filter((e) => e.code === 'TAB_AS_INDENT');
  const errors = tabs.length > 0 ? tabs : doc.errors;
  const problems: Problem[] = errors.map((e) => ({
    ...at(e.pos[0]),
    message: `YAML syntax error: ${firstLine(e.message)}`,
  }));
  if (tabs.length > 0) return problems;
  visit(doc, {
    Map(_, map) {
      const first = new Map<string, number>();
      for (const pair of map.items) {
        if (!isScalar(pair.key) || !pair.key.range) continue;
        const name = String(pair.key.value);
        const prev = first.get(name);
        if (prev === undefined) first.set(name, pair.key.range[0]);
        else {
          const p = lines.linePos(prev);
          const first = `${file}:${p.line}:${p.col}`;
          const message = `YAML syntax error: duplicate key "${name}", first at ${first} (expected each key once in a map)`;
          problems.push({ ...at(pair.key.range[0]), message });
        }
      }
    },
  });
  return inFileOrder(problems);
}

function inFileOrder(problems: Problem[]): Problem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.col - b.col);
}

/** 1-based line and column of a character offset. */
function positionOf(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, offset));
  const line = before.split('\n').length;
  return { line, col: offset - before.lastIndexOf('\n') };
}

function firstLine(s: string): string {
  return s.split('\n')[0].trim();
}

class Reporter {
  readonly errors: Problem[] = [];
  readonly warnings: Problem[] = [];
  private locator?: YamlLocator;
  constructor(
    readonly file: string,
    private readonly makeLocator: () => YamlLocator,
  ) {}
  private get locate(): YamlLocator {
    return (this.locator ??= this.makeLocator());
  }
  error(path: readonly PathSegment[], message: string, atKey = false): void {
    this.problemAt(atKey ? this.locate.key(path) : this.locate.value(path), message);
  }
  warn(path: readonly PathSegment[], message: string): void {
    const { line, col } = this.locate.key(path);
    this.warnings.push({ file: this.file, line, col, message, severity: 'warning' });
  }
  problemAt(pos: { line: number; col: number }, message: string): void {
    this.errors.push({ file: this.file, line: pos.line, col: pos.col, message, severity: 'error' });
  }
  positionOf(path: readonly PathSegment[]): { line: number; col: number } {
    return this.locate.value(path);
  }
  where(path: readonly PathSegment[]): string {
    const { line, col } = this.locate.key(path);
    return `${this.file}:${line}:${col}`;
  }
}

function normalize(raw: RawInventory, file: string, report: Reporter): Inventory {
  const defaults = raw.defaults ?? {};
  const rulesPath = defaults.rules_path ?? '/etc/iptables.up.rules';
  if (/(^|\/)\.\.?(\/|$)/.test(rulesPath) || rulesPath.endsWith('/')) {
    report.error(
      ['defaults', 'rules_path'],
      `defaults.rules_path "${rulesPath}" is not a plain file path (expected an absolute path without . or .. segments, such as /etc/iptables.up.rules)`,
    );
  } else if (!looksLikeRulesFile(rulesPath)) {
    const expected =
      'a path under /etc/ ending in .rules, .v4 or .v6, such as /etc/iptables.up.rules or /etc/iptables/rules.v4';
    report.error(
      ['defaults', 'rules_path'],
      `defaults.rules_path "${rulesPath}" does not look like a rules file (expected ${expected})`,
    );
  } else {
    const folderProblem = rulesFolderProblem(rulesPath, defaults.rules_path_unusual === true);
    if (folderProblem) report.error(['defaults', 'rules_path'], `defaults.rules_path "${rulesPath}" ${folderProblem}`);
  }
  const defaultSsh = mergeSsh(DEFAULT_SSH, defaults.ssh, ['defaults', 'ssh'], report);
  const management = sortNets(parseNets(raw.management ?? [], ['management'], report));
  if (management.length === 0) {
    report.warn(
      raw.management ? ['management'] : [],
      'no management networks: SSH is admitted only through fleet trust and allow rules',
    );
  }
  const names = collectNames(raw, report);
  // Roles and hosts in file order first, so a repeated address is reported where it repeats.
  const inFile: Host[] = [];
  const roles = Object.keys(raw.roles)
    .map((name) =>
      normalizeRole(name, raw.roles[name], defaults.forward ?? 'reject', defaultSsh, names, report, inFile),
    )
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  checkDuplicateAddresses(raw, inFile, report);
  const hosts = inFile.sort((a, b) => (a.name < b.name ? -1 : 1));
  const monitoring = (raw.monitoring ?? []).map((r, i) =>
    normalizeRule(r, `monitoring#${i + 1}`, ['monitoring', i], names, report),
  );
  const ruleNets = [...monitoring, ...roles.flatMap((r) => r.allow)].flatMap((r) =>
    r.from.flatMap((s) => (s.kind === 'net' ? [s.net] : [])),
  );
  return {
    file,
    dir: dirname(file),
    interface: defaults.interface,
    rulesPath,
    management,
    monitoring,
    trust: raw.trust ?? 'fleet',
    sets: raw.sets ?? 'none',
    preserve: preservePatterns(raw.preserve, report),
    roles,
    hosts,
    hasIpv6: management.some(isIpv6) || ruleNets.some(isIpv6) || hosts.some((h) => h.addresses.some(isIpv6)),
    ...(raw.agent ? { agent: normalizeAgent(raw.agent, report) } : {}),
  };
}

const EXPIRY_UNIT: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `agent:`: origins end with `/`, each signer is a well-formed public key, a release outlives a few polls. */
function normalizeAgent(raw: RawAgent, report: Reporter): AgentSettings {
  const written = typeof raw.origin === 'string' ? [raw.origin] : raw.origin;
  const origins = written.map((o) => (o.endsWith('/') ? o : `${o}/`));
  origins.forEach((o, i) => {
    if (origins.indexOf(o) !== i) {
      const path = typeof raw.origin === 'string' ? ['agent', 'origin'] : ['agent', 'origin', i];
      report.error(path, `agent.origin "${o}" is listed twice (expected each origin once)`);
    }
  });
  raw.signers.forEach((line, i) => {
    const why = publicKeyProblem(line);
    if (why) report.error(['agent', 'signers', i], `agent.signers[${i}]: ${why} (expected a line of a .pub file)`);
  });
  const everyS = raw.every ?? 60;
  const expires = raw.expires ?? '7d';
  const expiresS = Number(expires.slice(0, -1)) * EXPIRY_UNIT[expires.slice(-1)];
  if (expiresS < 3 * everyS) {
    report.error(
      ['agent', raw.expires === undefined ? 'every' : 'expires'],
      `agent.expires ${expires} is shorter than three polls of ${everyS}s (expected a release to outlive several polls, such as 7d)`,
    );
  }
  return { origins, signers: raw.signers.map((l) => l.trim()), everyS, expiresS };
}

/** Why an OpenSSH public key line is not one: its key blob must decode and name the type written before it. */
export function publicKeyProblem(line: string): string | undefined {
  const [type, b64] = line.split(' ');
  const blob = Buffer.from(b64, 'base64');
  if (blob.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) return 'the key is not valid base64';
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  const inner = len >= 0 && 4 + len <= blob.length ? blob.subarray(4, 4 + len).toString('latin1') : undefined;
  if (inner !== type) return `the key data is not a ${type} key${inner ? ` (it holds a ${inner} key)` : ''}`;
  return undefined;
}

const isIpv6 = (n: Net): boolean => n.family === 'ipv6';

/** `preserve:` with `default` expanded; a pattern that would match fwgen's own chains is an error. */
function preservePatterns(written: string[] | undefined, report: Reporter): string[] {
  (written ?? []).forEach((p, i) => {
    if (p !== 'default' && globMatcher([p])('FWGEN-INPUT')) {
      report.error(
        ['preserve', i],
        `preserve pattern "${p}" matches fwgen's own chains (FWGEN-*) (expected patterns of other tools' chains, such as DOCKER*)`,
      );
    }
  });
  return [...new Set((written ?? ['default']).flatMap((p) => (p === 'default' ? DEFAULT_PRESERVE : [p])))];
}

interface NameIndex {
  roles: Set<string>;
  hosts: Set<string>;
}

/** Host names must be unique across roles and distinct from role names, so `from` entries are unambiguous. */
function collectNames(raw: RawInventory, report: Reporter): NameIndex {
  const roles = new Set(Object.keys(raw.roles));
  // Host name to the role it is first in; a path is built only for a problem.
  const firstSeen = new Map<string, string>();
  const hostPath = (role: string, host: string): PathSegment[] => ['roles', role, 'hosts', host];
  for (const [roleName, role] of Object.entries(raw.roles)) {
    for (const hostName of Object.keys(role.hosts ?? {})) {
      const prev = firstSeen.get(hostName);
      if (/^[0-9]+(\.[0-9]+){3}$/.test(hostName)) {
        report.error(
          hostPath(roleName, hostName),
          `host name "${hostName}" looks like an IPv4 address (expected a name; write the address as the host's value)`,
          true,
        );
      } else if (prev !== undefined) {
        report.error(
          hostPath(roleName, hostName),
          `host "${hostName}" is already in role "${prev}" at ${report.where(hostPath(prev, hostName))} (expected each host in exactly one role)`,
          true,
        );
      } else if (roles.has(hostName)) {
        report.error(
          hostPath(roleName, hostName),
          `host "${hostName}" has the same name as a role (expected host names distinct from role names)`,
          true,
        );
      } else {
        firstSeen.set(hostName, roleName);
      }
    }
  }
  return { roles, hosts: new Set(firstSeen.keys()) };
}

/** Normalizes a role; its hosts are also appended to `inFile` in the order written. */
function normalizeRole(
  name: string,
  raw: RawRole,
  forward: ForwardMode,
  defaultSsh: SshSettings,
  names: NameIndex,
  report: Reporter,
  inFile: Host[],
): Role {
  const path: PathSegment[] = ['roles', name];
  const hostEntries = Object.entries(raw.hosts ?? {});
  if (hostEntries.length === 0) {
    if (raw.public) report.warn([...path, 'hosts'], `public role "${name}" has no hosts`);
    else
      report.error(
        [...path, 'hosts'],
        `role "${name}" has no hosts (expected at least one host, e.g. web1: 198.51.100.11)`,
        true,
      );
  }
  const hosts = hostEntries.map(([hostName, h]) => normalizeHost(hostName, name, h, defaultSsh, report));
  for (const h of hosts) inFile.push(h);
  return {
    name,
    public: raw.public ?? false,
    forward: raw.forward ?? forward,
    ports: sortPorts(parsePorts(raw.ports ?? [], [...path, 'ports'], report)),
    allow: (raw.allow ?? []).map((r, i) => normalizeRule(r, `allow#${i + 1}`, [...path, 'allow', i], names, report)),
    hosts: hosts.sort((a, b) => (a.name < b.name ? -1 : 1)),
    template: raw.template,
    templateAt:
      raw.template === undefined ? undefined : { file: report.file, ...report.positionOf([...path, 'template']) },
  };
}

function normalizeHost(
  name: string,
  role: string,
  written: string | string[] | RawHost,
  defaultSsh: SshSettings,
  report: Reporter,
): Host {
  const path = (): PathSegment[] => ['roles', role, 'hosts', name];
  // Short forms `web1: ADDR` and `web1: [ADDR4, ADDR6]` mean `{ address: ... }`.
  const raw: RawHost = typeof written === 'string' || Array.isArray(written) ? { address: written } : written;
  const short = raw !== written;
  const list = typeof raw.address === 'string' ? [raw.address] : raw.address;
  const base = (): PathSegment[] => (short ? path() : [...path(), 'address']);
  const addrPath = (i: number): PathSegment[] => (typeof raw.address === 'string' ? base() : [...base(), i]);
  const addresses: Net[] = [];
  list.forEach((text, i) => {
    const net = parseNet(text, { allowPrefix: false });
    if ('error' in net) return report.error(addrPath(i), `host "${name}": ${net.error}`);
    if (addresses.some((a) => a.family === net.family)) {
      return report.error(
        addrPath(i),
        `host "${name}" has two ${net.family === 'ipv4' ? 'IPv4' : 'IPv6'} addresses (expected at most one IPv4 and one IPv6 address)`,
      );
    }
    addresses.push(net);
  });
  const ssh = raw.ssh ? mergeSsh(defaultSsh, raw.ssh, [...path(), 'ssh'], report) : defaultSsh;
  const first = addresses[0]?.cidr;
  const sshHost = ssh.host || (first === undefined ? '' : first.slice(0, first.lastIndexOf('/')));
  return { name, role, addresses: sortNets(addresses), ssh: { ...ssh, host: sshHost } };
}

/**
 * ship overwrites this path as root (and backs it up beside itself), so a slip such as
 * /root/.ssh/authorized_keys must be refused before it reaches a host.
 */
function looksLikeRulesFile(path: string): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return path.startsWith('/etc/') && /^[A-Za-z0-9][A-Za-z0-9._@+-]*\.(rules|v4|v6)$/.test(name);
}

/** The folders iptables rules files live in (Debian's ifupdown and iptables-persistent, RHEL's iptables-services). */
export const RULES_FOLDERS = ['/etc', '/etc/iptables', '/etc/network', '/etc/sysconfig'];

/**
 * Another folder holds files of other tools, and `ship` replaces the file as root: `/etc/udev/rules.d/x.rules`
 * or `/etc/audit/rules.d/audit.rules` would become iptables rules. Another folder needs
 * `rules_path_unusual: true`; a `.d` folder (every file in it is read by some tool) is refused even then.
 */
function rulesFolderProblem(path: string, unusual: boolean): string | undefined {
  const folder = path.slice(0, path.lastIndexOf('/'));
  if (RULES_FOLDERS.includes(folder)) return undefined;
  const usual = `expected a file in ${RULES_FOLDERS.slice(0, -1).join(', ')} or ${RULES_FOLDERS.at(-1)}`;
  const dotD = folder.split('/').find((part) => part.endsWith('.d'));
  if (dotD) return `is in ${folder}, a folder whose files another tool reads (${dotD}), not iptables (${usual})`;
  if (unusual) return undefined;
  return `is in ${folder}, not a folder iptables rules files live in (${usual}, or, for ${folder}, also set defaults.rules_path_unusual: true)`;
}

const WRITTEN = [
  ['host', 'host'],
  ['user', 'user'],
  ['port', 'port'],
  ['identity', 'identity'],
  ['known_hosts', 'knownHosts'],
] as const;

function mergeSsh(base: SshSettings, raw: RawSsh | undefined, path: PathSegment[], report: Reporter): SshSettings {
  if (!raw) return base;
  if (raw.host !== undefined && !isHostName(raw.host) && 'error' in parseNet(raw.host, { allowPrefix: false })) {
    report.error(
      [...path, 'host'],
      `ssh.host "${raw.host}" is neither an IP address nor a DNS name (expected e.g. web2.example.net or 198.51.100.12)`,
    );
  }
  if (raw.source !== undefined && 'error' in parseNet(raw.source, { allowPrefix: false })) {
    report.error(
      [...path, 'source'],
      `ssh.source "${raw.source}" is not an IP address (expected the address hosts see SSH come from, e.g. 203.0.113.5)`,
    );
  }
  return {
    host: raw.host ?? base.host,
    user: raw.user ?? base.user,
    port: raw.port ?? base.port,
    identity: raw.identity ?? base.identity,
    knownHosts: raw.known_hosts ?? base.knownHosts,
    sudo: raw.sudo ?? base.sudo,
    jump: raw.jump ?? base.jump,
    source: raw.source ?? base.source,
    config: raw.config ?? base.config,
    written: [
      ...new Set([...(base.written ?? []), ...WRITTEN.filter(([k]) => raw[k] !== undefined).map(([, v]) => v)]),
    ],
  };
}

function isHostName(s: string): boolean {
  if (s.length > 253 || /^[0-9.]+$/.test(s)) return false;
  return s.split('.').every((label) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label));
}

function normalizeRule(
  raw: RawRule,
  label: string,
  path: PathSegment[],
  names: NameIndex,
  report: Reporter,
): AllowRule {
  const from: SourceRef[] = [];
  raw.from.forEach((entry, i) => {
    const ref = classifySource(entry, names);
    if ('error' in ref) report.error([...path, 'from', i], `${formatPath([...path, 'from', i])}: ${ref.error}`);
    else from.push(ref);
  });
  return { label, from, ports: sortPorts(parsePorts(raw.ports, [...path, 'ports'], report)) };
}

function classifySource(entry: string, names: NameIndex): SourceRef | { error: string } {
  if (names.roles.has(entry)) return { kind: 'role', name: entry };
  if (names.hosts.has(entry)) return { kind: 'host', name: entry };
  if (/^[0-9]+\.[0-9.]+(\/.*)?$/.test(entry) || entry.includes(':') || entry.includes('/')) {
    const net = parseNet(entry, { allowPrefix: true });
    return 'error' in net ? net : { kind: 'net', net };
  }
  const guess = closest(entry, [...names.roles, ...names.hosts]);
  return {
    error: `unknown role or host "${entry}" (expected a role name, a host name or a CIDR${guess ? `; did you mean "${guess}"?` : ''})`,
  };
}

function parsePorts(list: readonly string[], path: PathSegment[], report: Reporter): PortSpec[] {
  const out: PortSpec[] = [];
  list.forEach((text, i) => {
    const p = parsePort(text);
    if ('error' in p) report.error([...path, i], `${formatPath([...path, i])}: ${p.error}`);
    else out.push(p);
  });
  return out;
}

function parseNets(list: readonly string[], path: PathSegment[], report: Reporter): Net[] {
  const out: Net[] = [];
  list.forEach((text, i) => {
    const n = parseNet(text, { allowPrefix: true });
    if ('error' in n) report.error([...path, i], `${formatPath([...path, i])}: ${n.error}`);
    else out.push(n);
  });
  return out;
}

/** Two hosts with one address would make rules ambiguous and usually mean a copy-paste slip. */
function checkDuplicateAddresses(raw: RawInventory, inFile: readonly Host[], report: Reporter): void {
  const owner = new Map<string, Host>();
  for (const host of inFile) {
    for (const a of host.addresses) {
      const prev = owner.get(a.key);
      if (!prev) {
        owner.set(a.key, host);
        continue;
      }
      const path = ['roles', host.role, 'hosts', host.name];
      const prevPath = ['roles', prev.role, 'hosts', prev.name];
      const shown = a.cidr.replace(/\/\d+$/, '');
      report.error(
        path,
        `host "${host.name}" has address ${shown}, already used by host "${prev.name}" at ${report.where(prevPath)} (expected every address once)`,
        typeof raw.roles[host.role].hosts?.[host.name] !== 'string',
      );
    }
  }
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDist) [best, bestDist] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
