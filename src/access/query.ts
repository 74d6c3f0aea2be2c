/**
 * `fwgen query`: can SRC reach DST (on a port), and which rule decides? The verdict comes from what
 * ships: the rendered rules of DST's role (template rules included) and, in ipset mode, the rendered
 * set members. Names come from the inventory; the deciding rule is named by file and line, its comment,
 * and the inventory entry it was built from.
 */
import { UsageError } from '../errors.js';
import type { Family, Host, Inventory } from '../inventory/model.js';
import { parsePort } from '../inventory/ports.js';
import { formatPath, type PathSegment } from '../inventory/yaml-positions.js';
import { emitRule } from '../model/emit.js';
import { parseRuleset } from '../model/parse.js';
import { commentOf, rulesOf, type Rule, type Ruleset } from '../model/ruleset.js';
import { parseSets } from '../model/sets.js';
import { formatAddr, parseCidr, setCidrs, type Addr, type AddrSet } from './addresses.js';
import { accessOf, decide, decidedPieces, type Decision, type Place, type RulesetInput } from './evaluate.js';
import { interfaceClasses, namedInterfaces } from './fleet.js';
import { contains, intersect, union } from './intervals.js';
import { InventoryLines } from './inventory-lines.js';
import { listText } from './names.js';
import { entryPath, originOf } from './origin.js';
import { segments, servicesWhere } from './region.js';
import type { IfaceClass } from './rule-match.js';
import { describeServices, service, serviceRanges, type ServiceSet } from './services.js';

/** The rendered files a query reads. */
export interface QueryFiles {
  /** A role's rules for a family: the path shown (`rendered/db/iptables.up.rules`) and the text. */
  rules(role: string, family: Family): { path: string; text: string } | undefined;
  /** The sets file (ipset mode), if there is one. */
  sets(): { path: string; text: string } | undefined;
}

export interface QueryContext {
  readonly inventory: Inventory;
  /** The inventory file as shown in messages. */
  readonly inventoryFile: string;
  readonly inventoryText: string;
  readonly files: QueryFiles;
}

export interface QueryRequest {
  readonly from: string;
  readonly to: string;
  readonly port?: string;
  readonly in?: string;
}

export type QueryVerdict = 'allowed' | 'denied' | 'undetermined' | 'mixed';

/** A rule named by where it ships and where it came from. */
export interface RuleRef {
  /** `rendered/db/iptables.up.rules`, line 17; absent line: a chain's policy decided. */
  readonly file: string;
  readonly line: number;
  readonly text: string;
  readonly comment?: string;
  /** `fleet trust`, `db allow#1`, `default reject`, `template rule ...`. */
  readonly origin: string;
  readonly inventory?: { readonly file: string; readonly line: number; readonly path: string };
  /** Which packets of the connection it decided, when not the first one (`replies`). */
  readonly packets?: string;
  /** For an undetermined verdict: what is not understood. */
  readonly why?: string;
}

/** One answer at one interface: a verdict (with a port) or the ports reachable (without). */
export interface Answer {
  readonly in: string;
  readonly verdict: QueryVerdict;
  readonly rule?: RuleRef;
  /** A CIDR source: which parts of it get which verdict. */
  readonly parts?: readonly {
    readonly verdict: QueryVerdict;
    readonly cidrs: readonly string[];
    readonly rule?: RuleRef;
  }[];
  /** Without --port: what may be reached, as port ranges, each with its rule. */
  readonly ports?: readonly {
    /** As a reader says it: `tcp/22`, `every port`, `every port except tcp/25`. */
    readonly port: string;
    /** Each range of one protocol: `tcp/1-65535`, `udp/161`. */
    readonly ranges: readonly string[];
    readonly verdict: 'allowed' | 'undetermined';
    readonly from?: readonly string[];
    readonly rule: RuleRef;
  }[];
}

/** One source (host address or network) and one destination host. */
export interface PairResult {
  readonly from: string;
  readonly fromAddress: string;
  readonly to: string;
  readonly toAddress: string;
  readonly answer: Answer;
  /** The answer at the other interface, when it differs. */
  readonly other?: Answer;
}

export interface QueryReport {
  readonly from: string;
  readonly to: string;
  readonly port?: string;
  readonly verdict: QueryVerdict;
  readonly pairs: readonly PairResult[];
  /** Source and destination hosts that share no address family. */
  readonly unpaired: readonly { readonly from: string; readonly to: string }[];
}

interface Src {
  readonly label: string;
  readonly host?: Host;
  readonly family: Family;
  readonly set: AddrSet;
  readonly text: string;
  readonly point: boolean;
}

interface Dst {
  readonly host: Host;
  readonly family: Family;
  readonly addr: Addr;
  readonly text: string;
}

const IFACE = /^[A-Za-z0-9_.:@-]{1,15}$/;

/** Answers a query; bad names, ports or missing rendered files are usage errors (exit 2). */
export function runQuery(ctx: QueryContext, req: QueryRequest): QueryReport {
  const inv = ctx.inventory;
  const { members, isHost } = resolveSource(inv, req.from);
  const dsts = resolveDestination(inv, req.to);
  const svc = req.port === undefined ? undefined : parseService(req.port);
  if (req.in !== undefined && !IFACE.test(req.in)) {
    throw new UsageError(`--in "${req.in}" is not an interface name (expected e.g. eth1)`);
  }
  const rules = new RulesReader(ctx);
  const lines = new InventoryLines(ctx.inventoryText);
  const pairs: PairResult[] = [];
  const unpaired: { from: string; to: string }[] = [];
  const srcHosts = [...new Set(members.map((m) => m.label))];
  for (const d of dsts) {
    for (const label of srcHosts) {
      const mine = members.filter((m) => m.label === label && m.family === d.family);
      if (mine.length === 0) {
        if (!dsts.some((o) => o.host === d.host && members.some((m) => m.label === label && m.family === o.family))) {
          unpaired.push({ from: label, to: d.host.name });
        }
        continue;
      }
      for (const m of mine) pairs.push(answerPair(m, d, svc, req.in, isHost, inv, rules, lines, ctx.inventoryFile));
    }
  }
  return {
    from: req.from,
    to: req.to,
    ...(req.port ? { port: req.port } : {}),
    verdict: overall(pairs, svc !== undefined),
    pairs,
    unpaired: dedupe(unpaired),
  };
}

function dedupe(list: { from: string; to: string }[]): { from: string; to: string }[] {
  const seen = new Set<string>();
  return list.filter((x) => !seen.has(`${x.from} ${x.to}`) && seen.add(`${x.from} ${x.to}`));
}

function overall(pairs: readonly PairResult[], withPort: boolean): QueryVerdict {
  if (pairs.length === 0) return 'denied';
  const verdicts = pairs.map((p) => (withPort ? p.answer.verdict : reachable(p.answer)));
  if (verdicts.includes('undetermined')) return 'undetermined';
  if (verdicts.every((v) => v === 'allowed')) return 'allowed';
  if (verdicts.every((v) => v === 'denied')) return 'denied';
  return 'mixed';
}

/** Without a port: allowed when something is reachable, undetermined when only undetermined ports are. */
function reachable(a: Answer): QueryVerdict {
  const ports = a.ports ?? [];
  if (ports.some((p) => p.verdict === 'allowed')) return 'allowed';
  return ports.length > 0 ? 'undetermined' : 'denied';
}

// ---- names ---------------------------------------------------------------------------------------------

function resolveSource(inv: Inventory, from: string): { members: Src[]; isHost: boolean } {
  const hostMembers = (h: Host): Src[] =>
    h.addresses.map((a) => {
      const r = parseCidr(a.cidr)!;
      return { label: h.name, host: h, family: a.family, set: [r.lo, r.hi], text: a.cidr.split('/')[0]!, point: true };
    });
  const host = inv.hosts.find((h) => h.name === from);
  if (host) return { members: hostMembers(host), isHost: true };
  const role = inv.roles.find((r) => r.name === from);
  if (role) return { members: role.hosts.flatMap(hostMembers), isHost: true };
  const net = parseCidr(from);
  if (net) {
    const owner = inv.hosts.find((h) => h.addresses.some((a) => sameNet(a.cidr, net)));
    if (owner && !from.includes('/'))
      return { members: hostMembers(owner).filter((m) => m.family === net.family), isHost: true };
    const point = !from.includes('/') || isSingle(net);
    const text = point
      ? formatAddr(net.family, net.lo)
      : `${formatAddr(net.family, net.lo)}${from.slice(from.indexOf('/'))}`;
    return { members: [{ label: text, family: net.family, set: [net.lo, net.hi], text, point }], isHost: false };
  }
  throw new UsageError(
    `--from "${from}" is not a host, role, address or CIDR (expected a host or role of ${inv.file}, e.g. ${example(inv)}, or an address such as 198.51.100.7 or 192.0.2.0/24)`,
  );
}

function resolveDestination(inv: Inventory, to: string): Dst[] {
  const dstsOf = (h: Host): Dst[] =>
    h.addresses.map((a) => ({ host: h, family: a.family, addr: parseCidr(a.cidr)!.lo, text: a.cidr.split('/')[0]! }));
  const host = inv.hosts.find((h) => h.name === to);
  if (host) return dstsOf(host);
  const role = inv.roles.find((r) => r.name === to);
  if (role) return role.hosts.flatMap(dstsOf);
  const net = parseCidr(to);
  const owner =
    net && !to.includes('/') ? inv.hosts.find((h) => h.addresses.some((a) => sameNet(a.cidr, net))) : undefined;
  if (owner) return dstsOf(owner).filter((d) => d.family === net!.family);
  throw new UsageError(
    `--to "${to}" is not a host or role of ${inv.file} (expected e.g. ${example(inv)}, or an inventory host's address)`,
  );
}

function example(inv: Inventory): string {
  return [inv.hosts[0]?.name, inv.roles[0]?.name].filter(Boolean).join(' or ') || 'web1';
}

function sameNet(cidr: string, net: { lo: Addr; family: Family }): boolean {
  const r = parseCidr(cidr);
  return r !== undefined && r.family === net.family && r.lo === net.lo;
}

function isSingle(net: { family: Family; lo: Addr; hi: Addr }): boolean {
  return net.family === 'ipv4'
    ? (net.hi as number) - (net.lo as number) === 1
    : (net.hi as bigint) - (net.lo as bigint) === 1n;
}

function parseService(text: string): number {
  const p = parsePort(text);
  if ('error' in p) throw new UsageError(`--port ${p.error}`);
  if (p.from !== p.to) throw new UsageError(`--port "${text}" is a range (expected one port, tcp/N or udp/N)`);
  return service(p.proto, p.from);
}

// ---- rendered files ------------------------------------------------------------------------------------

interface LoadedRules {
  readonly input: RulesetInput;
  readonly path: string;
  /** Line of each rule of each table, in file order. */
  readonly lines: ReadonlyMap<Rule, number>;
  /** Line of each chain declaration, for a policy that decides. */
  readonly policyLines: ReadonlyMap<string, number>;
}

class RulesReader {
  private readonly cache = new Map<string, LoadedRules>();
  private setsMembers?: ReadonlyMap<string, readonly string[]>;
  constructor(private readonly ctx: QueryContext) {}

  load(role: string, family: Family): LoadedRules {
    const key = `${role}|${family}`;
    let r = this.cache.get(key);
    if (!r) {
      const file = this.ctx.files.rules(role, family);
      if (!file) {
        throw new UsageError(
          `role ${role} has no rendered ${family === 'ipv4' ? 'IPv4' : 'IPv6'} rules file`,
          'run `fwgen render` (query reads what ships: the rendered files)',
        );
      }
      const { ruleset, problems } = parseRuleset(file.text);
      const p = problems[0];
      if (p) throw new UsageError(`${file.path}:${p.line}: ${p.message}`, 'run `fwgen render` to rewrite rendered/');
      r = { input: { ruleset, family, sets: this.sets() }, path: file.path, ...lineIndex(file.text, ruleset) };
      this.cache.set(key, r);
    }
    return r;
  }

  private sets(): ReadonlyMap<string, readonly string[]> {
    if (!this.setsMembers) {
      const file = this.ctx.files.sets();
      // Members are only looked up: their order does not matter.
      const parsed = file ? parseSets(file.text, { keepOrder: true }) : { sets: [], problems: [] };
      const p = parsed.problems[0];
      if (file && p) throw new UsageError(`${file.path}:${p.line}: ${p.message}`, 'run `fwgen render`');
      this.setsMembers = new Map(parsed.sets.map((s) => [s.name, s.members]));
    }
    return this.setsMembers;
  }
}

/** Rule lines are read back from the text: parseRuleset keeps rules in file order, table by table. */
function lineIndex(text: string, rs: Ruleset): { lines: Map<Rule, number>; policyLines: Map<string, number> } {
  const ruleLines: number[][] = [];
  const policyLines = new Map<string, number>();
  let table = -1;
  let tableName = '';
  const all = text.split('\n');
  for (let i = 0; i < all.length; i++) {
    const l = all[i]!.replace(/\r$/, '');
    if (l.startsWith('*')) {
      table++;
      tableName = l.slice(1).trim();
      ruleLines.push([]);
    } else if (l.startsWith(':')) policyLines.set(`${tableName} ${l.slice(1).split(/\s/)[0]}`, i + 1);
    else if (table >= 0 && l.trim() !== '' && !l.startsWith('#') && l !== 'COMMIT') ruleLines[table]!.push(i + 1);
  }
  const lines = new Map<Rule, number>();
  rs.tables.forEach((t, ti) => rulesOf(t).forEach((r, ri) => lines.set(r, ruleLines[ti]?.[ri] ?? 0)));
  return { lines, policyLines };
}

// ---- answers -------------------------------------------------------------------------------------------

function answerPair(
  src: Src,
  dst: Dst,
  svc: number | undefined,
  given: string | undefined,
  isHost: boolean,
  inv: Inventory,
  rules: RulesReader,
  lines: InventoryLines,
  inventoryFile: string,
): PairResult {
  const loaded = rules.load(dst.host.role, dst.family);
  const classes = interfaceClasses(namedInterfaces([loaded.input]));
  const internal = inv.interface;
  const other = classes[classes.length - 1]!;
  const named = (n: string): IfaceClass => ({ name: n });
  // The default: the internal interface for an inventory host, any other interface otherwise.
  // A host connecting to its own address goes over lo.
  const self = src.host !== undefined && src.host === dst.host;
  const first: IfaceClass =
    given !== undefined ? named(given) : self ? named('lo') : isHost && internal ? named(internal) : other;
  const second: IfaceClass | undefined =
    given !== undefined || self || !internal ? undefined : 'name' in first ? other : named(internal);
  const ref = (d: Decision) => ruleRef(d, loaded, src, dst, inv, lines, inventoryFile);
  const answer = (iface: IfaceClass): Answer => {
    const place: Place = { family: dst.family, local: dst.addr, iface };
    const label = ifaceName(iface);
    return svc === undefined
      ? portsAnswer(loaded, place, src, label, ref)
      : portAnswer(loaded, place, src, svc, label, ref);
  };
  const a = answer(first);
  const b = second ? answer(second) : undefined;
  const differs = b !== undefined && summary(a) !== summary(b);
  return {
    from: src.label,
    fromAddress: src.text,
    to: dst.host.name,
    toAddress: dst.text,
    answer: a,
    ...(differs ? { other: b } : {}),
  };
}

function summary(a: Answer): string {
  if (a.ports) return a.ports.map((p) => `${p.port}:${p.verdict}:${(p.from ?? []).join(',')}`).join(' ');
  return `${a.verdict}:${(a.parts ?? []).map((p) => `${p.verdict}=${p.cidrs.join(',')}`).join(' ')}`;
}

function ifaceName(c: IfaceClass): string {
  if ('name' in c) return c.name;
  return c.except.length === 0 ? 'any interface' : `interfaces other than ${listText([...c.except])}`;
}

const VERDICT: Record<Decision['verdict'], QueryVerdict> = {
  accept: 'allowed',
  deny: 'denied',
  undetermined: 'undetermined',
};

function portAnswer(
  loaded: LoadedRules,
  place: Place,
  src: Src,
  svc: number,
  label: string,
  ref: (d: Decision) => RuleRef,
): Answer {
  const at = (remote: Addr) => decide(loaded.input, place, { remote, service: svc });
  if (src.point) {
    const d = at(src.set[0]!);
    return { in: label, verdict: VERDICT[d.verdict], rule: ref(d) };
  }
  const access = accessOf(loaded.input, place);
  const setAt = (r: { bounds: readonly number[]; sets: readonly AddrSet[] }): AddrSet => {
    for (let i = 0; i < r.sets.length; i++) if (r.bounds[i]! <= svc && svc < r.bounds[i + 1]!) return r.sets[i]!;
    return [];
  };
  const allowed = intersect(setAt(access.accept), src.set);
  const undet = intersect(setAt(access.undetermined), src.set);
  const parts = cidrParts(
    src,
    [
      ['allowed', allowed],
      ['undetermined', undet],
    ],
    (a) => ref(at(a)),
  );
  const verdicts = new Set(parts.map((p) => p.verdict));
  const verdict: QueryVerdict =
    verdicts.size === 1 ? parts[0]!.verdict : verdicts.has('undetermined') ? 'undetermined' : 'mixed';
  return { in: label, verdict, ...(verdicts.size === 1 ? { rule: parts[0]!.rule! } : {}), parts };
}

/** A network source split by verdict (what is neither allowed nor undetermined is denied), each part's rule named. */
function cidrParts(
  src: Src,
  known: [QueryVerdict, AddrSet][],
  rule: (a: Addr) => RuleRef,
): { verdict: QueryVerdict; cidrs: string[]; rule?: RuleRef }[] {
  let rest: AddrSet = src.set;
  const out: { verdict: QueryVerdict; cidrs: string[]; rule?: RuleRef }[] = [];
  for (const [verdict, set] of known) {
    if (set.length === 0) continue;
    rest = subtractSet(rest, set);
    out.push({ verdict, cidrs: setCidrs(src.family, set), rule: rule(set[0]!) });
  }
  if (rest.length > 0) out.push({ verdict: 'denied', cidrs: setCidrs(src.family, rest), rule: rule(rest[0]!) });
  return out;
}

function subtractSet(a: AddrSet, b: AddrSet): AddrSet {
  const out: Addr[] = [];
  for (let i = 0; i < a.length; i += 2) {
    let lo = a[i]!;
    const hi = a[i + 1]!;
    for (let j = 0; j < b.length; j += 2) {
      if (b[j + 1]! <= lo || b[j]! >= hi) continue;
      if (b[j]! > lo) out.push(lo, b[j]!);
      lo = b[j + 1]! > lo ? b[j + 1]! : lo;
    }
    if (lo < hi) out.push(lo, hi);
  }
  return out;
}

/** Without a port: the services reachable from the source, split where the deciding rule changes. */
function portsAnswer(
  loaded: LoadedRules,
  place: Place,
  src: Src,
  label: string,
  ref: (d: Decision) => RuleRef,
): Answer {
  const access = accessOf(loaded.input, place);
  // Pieces decided by one rule (for one part of a network source) are told together.
  const groups = new Map<
    string,
    { verdict: 'allowed' | 'undetermined'; svcs: ServiceSet; from?: string[]; d: Decision }
  >();
  const put = (verdict: 'allowed' | 'undetermined', lo: number, hi: number, d: Decision, from?: string[]) => {
    const key = `${verdict}|${d.rule ? (loaded.lines.get(d.rule) ?? emitRule(d.rule)) : d.policy}|${from?.join(',') ?? ''}`;
    const g = groups.get(key);
    if (g) g.svcs = union(g.svcs, [lo, hi]);
    else groups.set(key, { verdict, svcs: [lo, hi], d, ...(from ? { from } : {}) });
  };
  const add = (verdict: 'allowed' | 'undetermined', region: typeof access.accept): void => {
    if (src.point) {
      const remote = src.set[0]!;
      const svcs = servicesWhere(region, (s) => contains(s, remote));
      for (const [lo, hi, d] of decidedPieces(loaded.input, place, remote, svcs)) put(verdict, lo, hi, d);
      return;
    }
    for (const [lo, hi, set] of segments(region)) {
      const part = intersect(set, src.set);
      if (part.length === 0) continue;
      put(verdict, lo, hi, decide(loaded.input, place, { remote: part[0]!, service: lo }), setCidrs(src.family, part));
    }
  };
  add('allowed', access.accept);
  add('undetermined', access.undetermined);
  const ports = [...groups.values()].map((g) => ({
    port: describeServices(g.svcs).join(', '),
    ranges: serviceRanges(g.svcs),
    verdict: g.verdict,
    ...(g.from ? { from: g.from } : {}),
    rule: ref(g.d),
  }));
  const verdict: QueryVerdict = ports.some((p) => p.verdict === 'allowed')
    ? 'allowed'
    : ports.length > 0
      ? 'undetermined'
      : 'denied';
  return { in: label, verdict, ports };
}

function ruleRef(
  d: Decision,
  loaded: LoadedRules,
  src: Src,
  dst: Dst,
  inv: Inventory,
  lines: InventoryLines,
  inventoryFile: string,
): RuleRef {
  const origin = originOf(d.rule, d.policy);
  const line = d.rule ? (loaded.lines.get(d.rule) ?? 0) : (loaded.policyLines.get(`${d.table} ${d.chain}`) ?? 0);
  const comment = d.rule ? commentOf(d.rule) : undefined;
  let inventory: RuleRef['inventory'];
  if (origin.entry) {
    const written = writtenLists(origin.entry, lines);
    const host = src.host ? { role: src.host.role, name: src.host.name } : undefined;
    const inside = (cidr: string) => {
      const n = parseCidr(cidr);
      return n !== undefined && n.family === src.family && n.lo <= src.set[0]! && src.set[0]! < n.hi;
    };
    const path: PathSegment[] = entryPath(origin.entry, { ...written, ...(host ? { host } : {}) }, inside);
    inventory = { file: inventoryFile, line: lines.lineOf(path), path: formatPath(path) };
  }
  return {
    file: loaded.path,
    line,
    text: d.rule ? emitRule(d.rule) : `:${d.chain} ${d.policy}`,
    ...(comment ? { comment } : {}),
    origin: origin.label,
    ...(inventory ? { inventory } : {}),
    ...(d.packets !== 'new connection' ? { packets: d.packets } : {}),
    ...(d.why ? { why: d.why } : {}),
  };
}

function writtenLists(entry: NonNullable<ReturnType<typeof originOf>['entry']>, lines: InventoryLines) {
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);
  if (entry.kind === 'management') return { management: strings(lines.valueAt(['management'])) };
  if (entry.kind === 'ports') return { ports: strings(lines.valueAt(['roles', entry.role, 'ports'])) };
  return {};
}

// ---- text ----------------------------------------------------------------------------------------------

/** How many pairs the text lists before it only counts. */
const SHOWN = 20;

/** The report as lines of text: a summary line, then each pair with its rule and inventory entry. */
export function formatQuery(r: QueryReport): string[] {
  const on = r.port ? ` on ${r.port}` : '';
  const counts = countVerdicts(r);
  const out = [`${r.from} -> ${r.to}${on}: ${r.verdict}${counts}`];
  // A mixed answer says first which pairs are allowed and which not, before the details.
  if (r.verdict === 'mixed' && r.pairs.length > 1) {
    for (const v of ['allowed', 'denied', 'undetermined', 'mixed'] as const) {
      const pairs = r.pairs.filter((p) => (r.port ? p.answer.verdict : reachable(p.answer)) === v);
      if (pairs.length > 0)
        out.push(
          `  ${v}: ${listText(
            pairs.map((p) => `${p.from} -> ${p.to}`),
            12,
          )}`,
        );
    }
  }
  // Destinations answered alike (the hosts of a role share its rules) are listed together.
  const groups = new Map<string, { p: PairResult; to: string[] }>();
  for (const p of r.pairs) {
    const key = `${p.from} ${p.fromAddress}\n${pairLines(p, r.port, '').join('\n')}`;
    const g = groups.get(key);
    if (g) g.to.push(`${p.to} (${p.toAddress})`);
    else groups.set(key, { p, to: [`${p.to} (${p.toAddress})`] });
  }
  const list = [...groups.values()];
  for (const g of list.slice(0, SHOWN)) out.push(...pairLines(g.p, r.port, listText(g.to, 6)));
  if (list.length > SHOWN) out.push(`... and ${list.length - SHOWN} more (--json lists every pair)`);
  for (const u of r.unpaired) out.push(`${u.from} -> ${u.to}: no address family in common`);
  return out;
}

function countVerdicts(r: QueryReport): string {
  if (r.pairs.length <= 1) return '';
  const n = r.pairs.filter((p) => (r.port ? p.answer.verdict : reachable(p.answer)) === 'allowed').length;
  return ` (${n} of ${r.pairs.length} pairs ${r.port ? 'allowed' : 'reach something'})`;
}

function pairLines(p: PairResult, port: string | undefined, to: string): string[] {
  const from = p.from === p.fromAddress ? p.from : `${p.from} (${p.fromAddress})`;
  const head = `${from} -> ${to}`;
  const lines = answerLines(head, p.answer, port);
  if (p.other) lines.push(...answerLines('  but', p.other, port));
  return lines;
}

function answerLines(head: string, a: Answer, port: string | undefined): string[] {
  if (port !== undefined) {
    const out = [`${head} on ${port} via ${a.in}: ${a.verdict}`];
    if (a.parts && a.parts.length > 1) {
      for (const part of a.parts) {
        out.push(`    ${part.verdict}: ${listText(part.cidrs, 8)}`);
        if (part.rule) out.push(...refLines(part.rule, '      '));
      }
    } else if (a.rule) out.push(...refLines(a.rule, '    '));
    return out;
  }
  const ports = a.ports ?? [];
  const reach = ports.filter((x) => x.verdict === 'allowed').map((x) => x.port);
  const out = [`${head} via ${a.in}: ${reach.length > 0 ? listText(reach, 8) : 'nothing'}`];
  for (const x of ports) {
    const who = x.from ? ` from ${listText([...x.from], 4)}` : '';
    out.push(`    ${x.port}${who}: ${x.verdict}`, ...refLines(x.rule, '      '));
  }
  return out;
}

function refLines(ref: RuleRef, indent: string): string[] {
  const what = ref.comment ? `"${ref.comment}"` : ref.text;
  const packets = ref.packets ? ` (${ref.packets})` : '';
  const out = [`${indent}by ${ref.file}:${ref.line} ${what}${packets}${ref.why ? `: ${ref.why}` : ''}`];
  if (ref.inventory)
    out.push(`${indent}from ${ref.inventory.file}:${ref.inventory.line} ${ref.inventory.path} (${ref.origin})`);
  else
    out.push(
      `${indent}from ${ref.origin.startsWith('template') ? 'a role template, not the inventory' : `fwgen's baseline (${ref.origin})`}`,
    );
  return out;
}
