import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.js';
import { checkLinksStayInside } from '../util/contained-path.js';
import { applyOutput } from '../output/write-rendered.js';
import { execFileSync } from 'node:child_process';
import { existingFiles, fwgenDependency, INVENTORY_PATH, scaffoldFiles } from '../init/scaffold.js';
import { renderProject, VERSION } from './project.js';

const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

/** `fwgen init [DIR]`: scaffolds an inventory repository, renders it, prints the next commands. */
export async function initCommand(dirArg: string | undefined): Promise<void> {
  const dir = resolve(dirArg ?? '.');
  const files = scaffoldFiles({ root: PACKAGE_ROOT, version: VERSION }, packageName(basename(dir)));
  const existing = existingFiles(dir, files);
  if (existing.length > 0) {
    const found = existing.join(', ');
    throw new UsageError(`${dir} already has ${found}; fwgen init overwrites nothing`, 'choose an empty or new folder');
  }
  // Nothing is written if any file would go through a link out of the new repository (`templates -> ~/.ssh`).
  for (const f of [...files.map((x) => x.path), 'rendered']) checkLinksStayInside(dir, join(dir, f), 'fwgen init');
  for (const f of files) {
    mkdirSync(dirname(join(dir, f.path)), { recursive: true });
    writeFileSync(join(dir, f.path), f.content, { flag: 'wx' });
  }
  const out = join(dir, 'rendered');
  const project = renderProject({ inventory: join(dir, INVENTORY_PATH), out });
  await applyOutput(project.changes, out);
  const created = [...files.map((x) => x.path), ...project.files.map((x) => `rendered/${x.path}`)];
  for (const f of created) process.stdout.write(`created ${f}\n`);
  const cd = dirArg === undefined ? '' : `cd ${shellWord(dirArg)} && `;
  const dependency = fwgenDependency({ root: PACKAGE_ROOT, version: VERSION });
  const outer = enclosingRepository(dir);
  process.stdout.write(
    [
      '',
      'Next:',
      `  ${cd}npm install   # installs fwgen, writes package-lock.json (the CI workflow runs npm ci)`,
      '  npx fwgen render --check   # after editing inventory/inventory.yaml, `npx fwgen render`',
      '  git init && git add . && git commit -m "Firewall inventory"   # then push: CI checks rendered/',
      '',
      ...(dependency.startsWith('file:')
        ? [
            `Before you push: package.json depends on fwgen as ${dependency}, a folder on this machine,`,
            'which CI\'s `npm ci` cannot install: replace it with a version or a git URL ("fwgen": "github:OWNER/fwgen").',
            '',
          ]
        : []),
      ...(outer
        ? [
            `Note: ${dir} is inside the git repository ${outer}: \`git init\` there makes a repository nested in it;`,
            'an inventory repository of its own is best made outside (fwgen init ../my-firewall).',
            '',
          ]
        : []),
    ].join('\n'),
  );
}

/** The top of the git work tree holding `dir`, if any (the new repository would be nested in it). */
function enclosingRepository(dir: string): string | undefined {
  try {
    return execFileSync('git', ['-C', dir, 'rev-parse', '--show-toplevel'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return undefined;
  }
}

/** npm package names are lower case, without spaces. */
function packageName(folder: string): string {
  return (
    folder
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[._-]+/, '') || 'firewall-inventory'
  );
}

function shellWord(s: string): string {
  return /^[A-Za-z0-9._/@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
