import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseStatusOutput, readCall } from '../src/remote/read.js';

// The read step frames each file and table by its length in bytes (${#var}, no fork). bash and
// busybox count characters in a UTF-8 locale: lib.sh sets LC_ALL=C so that every shell counts bytes.
// Run for real, in a network namespace of its own (unshare -n), under each shell a host may have as sh.
describe('the read step frames multibyte text right under every sh', () => {
  const text = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment "règles — ünïcödé ✓" -j ACCEPT\nCOMMIT\n';
  for (const shell of [['dash'], ['bash'], ['busybox', 'sh']]) {
    it(shell.join(' '), () => {
      const dir = mkdtempSync(join(tmpdir(), 'fwgen-framing-'));
      try {
        const paths = { rules: join(dir, 'iptables.up.rules'), rules6: join(dir, 'ip6tables.up.rules') };
        writeFileSync(paths.rules, text);
        const call = readCall(paths, false);
        // The live table holds the multibyte comment: loaded first in the new namespace, then read.
        const load = 'iptables-restore < "$1" && shift && exec "$@"';
        const argv = [
          '-n',
          'sh',
          '-c',
          load,
          'sh',
          paths.rules,
          ...shell,
          '-c',
          call.script,
          'fwgen-read',
          ...call.args,
        ];
        const r = spawnSync('unshare', argv, {
          encoding: 'utf8',
          env: { PATH: process.env.PATH, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' },
        });
        console.log(
          shell.join(' '),
          JSON.stringify(r.stdout.split('\n').filter((l) => /^-?[0-9]+$/.test(l))),
          r.stderr.slice(0, 200),
        );
        expect(r.status, r.stderr).toBe(0);
        const read = parseStatusOutput(r.stdout, false);
        expect(read.ok, JSON.stringify(read)).toBe(true);
        if (read.ok) expect(read.status.file4).toBe(text);
        if (!read.ok) return;
        expect(read.status.live4).toContain('--comment "règles — ünïcödé ✓" -j ACCEPT');
        // Whole, to its last byte, and every section after it in place (a short count shifts them all).
        expect(read.status.live4).toMatch(/\nCOMMIT\n# Completed on [^\n]*\n$/);
        expect(read.status.liveSets).toBe('');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
