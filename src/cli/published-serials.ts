import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifest } from '../publish/manifest.js';
import { manifestPath } from '../publish/publish-tree.js';

/**
 * The serial each role's published manifest holds, as hosts see it: read from a published tree (a
 * folder) or fetched from an origin (a URL; 5 s per manifest). Unverified (it only says which hosts are
 * behind). Roles whose manifest cannot be read are absent; `problems` says why.
 */
export async function publishedSerials(
  source: string,
  roles: readonly string[],
): Promise<{ serials: Map<string, number>; problems: string[] }> {
  const serials = new Map<string, number>();
  const problems: string[] = [];
  await Promise.all(
    roles.map(async (role) => {
      try {
        const text = /^https?:\/\//.test(source)
          ? await fetchText(`${source.replace(/\/?$/, '/')}${manifestPath(role)}`)
          : readFileSync(join(source, manifestPath(role)), 'utf8');
        const m = parseManifest(text);
        if (typeof m === 'string') problems.push(`role ${role}: ${m}`);
        else if (m.role !== role) problems.push(`role ${role}: the manifest is of role ${m.role}`);
        else serials.set(role, m.serial);
      } catch (err) {
        problems.push(`role ${role}: ${(err as Error).message}`);
      }
    }),
  );
  return { serials, problems };
}

async function fetchText(url: string): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000), headers: { 'cache-control': 'no-cache' } });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  const text = await r.text();
  if (text.length > 65536) throw new Error(`${url}: not a manifest (${text.length} bytes)`);
  return text;
}
