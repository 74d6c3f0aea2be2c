import { existsSync, readFileSync } from 'node:fs';
import { join, sep } from 'node:path';

/** One file `fwgen init` writes, relative to the new repository. */
export interface ScaffoldFile {
  readonly path: string;
  readonly content: string;
}

/** Where fwgen itself lives: its package root, and whether it came from a registry (node_modules). */
export interface FwgenSource {
  readonly root: string;
  readonly version: string;
}

export const INVENTORY_PATH = 'inventory/inventory.yaml';
export const SCHEMA_LINE = '# yaml-language-server: $schema=../node_modules/fwgen/schema/inventory.schema.json';

/**
 * The dependency on fwgen a new repository records: a version range when fwgen was installed from a
 * registry, else the folder it runs from (a checkout or an unpacked tarball), as `file:`.
 */
export function fwgenDependency(source: FwgenSource): string {
  return source.root.split(sep).includes('node_modules') ? `^${source.version}` : `file:${source.root}`;
}

/** The files of a new inventory repository (rendered/ is made by rendering, not listed here). */
export function scaffoldFiles(source: FwgenSource, name: string): ScaffoldFile[] {
  const read = (rel: string) => readFileSync(join(source.root, rel), 'utf8');
  const inventory = read('inventory/inventory.yaml').replace(/^# yaml-language-server: \$schema=.*$/m, SCHEMA_LINE);
  const pkg = {
    name,
    private: true,
    description: 'Firewall inventory rendered and shipped by fwgen',
    scripts: { render: 'fwgen render', check: 'fwgen render --check', validate: 'fwgen validate' },
    dependencies: { fwgen: fwgenDependency(source) },
  };
  return [
    { path: INVENTORY_PATH, content: inventory },
    { path: 'templates/README.md', content: TEMPLATES_README },
    { path: 'package.json', content: `${JSON.stringify(pkg, null, 2)}\n` },
    { path: '.github/workflows/render.yml', content: read('.github/workflows/render.yml') },
    { path: '.gitignore', content: 'node_modules/\n.fwgen/\n' },
  ];
}

/** Files of the scaffold that already exist under `dir` (init never overwrites). */
export function existingFiles(dir: string, files: readonly ScaffoldFile[]): string[] {
  return [...files.map((f) => f.path), 'rendered'].filter((p) => existsSync(join(dir, p)));
}

const TEMPLATES_README = `# templates/

fwgen builds every rule itself. For what the inventory cannot say, \`roles/<role>.njk\` is used for that
role (or name a file with the role's \`template:\` key): start it with \`{% extends "base.rules.njk" %}\`
and put verbatim rules for fwgen's chains in \`{% block extra %}\`, one per line, as iptables-save prints
them, e.g. \`-A FWGEN-INPUT -s 192.0.2.7/32 -p tcp -m tcp --dport 9000 -j ACCEPT\`.
`;
