/**
 * Issue 16, finding 12 (part): what a host sends back is printed and logged with its control
 * characters escaped, so that a terminal escape cannot hide or fake a failure.
 * test/e2e/host-ssh.test.ts shows it with a real host whose step prints escapes.
 */
import { describe, expect, it } from 'vitest';
import { formatCheck } from '../src/cli/doctor-command.js';
import { formatStatus } from '../src/cli/status-command.js';
import { lastErrorLine } from '../src/remote/scripts.js';
import { TransportError } from '../src/remote/transport.js';
import { printableResult } from '../src/ship/ship-fleet.js';
import type { HostStatus } from '../src/status/host-status.js';
import { printable } from '../src/util/printable.js';

// Erase the line, go up one, print a green "in-sync": what a hostile host would send.
const FAKE = '\x1b[2K\x1b[1A\x1b[32min-sync\x1b[0m';
const NO_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]/;

describe('printable', () => {
  it('escapes C0, DEL, C1 and bidi marks, keeps text, tabs and (when asked) newlines', () => {
    expect(printable(`a${FAKE}`)).toBe('a\\x1b[2K\\x1b[1A\\x1b[32min-sync\\x1b[0m');
    expect(printable('cr\roverwrite\x7f\x9b31m')).toBe('cr\\x0doverwrite\\x7f\\x9b31m');
    expect(printable('evil\u202etxt.exe')).toBe('evil\\u202etxt.exe');
    expect(printable('tab\tok, été, 東京')).toBe('tab\tok, été, 東京');
    expect(printable('two\nlines')).toBe('two\\nlines');
    expect(printable('two\nlines', true)).toBe('two\nlines');
    expect(printable(printable(FAKE))).toBe(printable(FAKE));
  });

  it("a step's last stderr line, a transport error, a status row and a doctor check come out printable", () => {
    expect(lastErrorLine(`noise\nfwgen: failed ${FAKE}\n`)).toBe(`failed ${printable(FAKE)}`);
    const err = new TransportError('unreachable', `cannot connect: ${FAKE}`, `jump host ${FAKE}`);
    expect(err.message).not.toMatch(NO_CONTROL);
    expect(err.hop).not.toMatch(NO_CONTROL);
    const row: HostStatus = {
      host: 'web1',
      role: 'web',
      state: 'drifted',
      shipped: { fwgen: `0.1${FAKE}`, commit: `abc${FAKE}`, shippedAt: FAKE, shippedBy: 'x' },
      backups: 1,
      armed: false,
      foreign: [`DOCKER${FAKE}`],
      foreignRules: [`-A INPUT -j DOCKER${FAKE}`],
      drift: [`+-A FWGEN-INPUT -m comment --comment "${FAKE}" -j ACCEPT`],
      reason: FAKE,
    };
    const text = formatStatus([row], true);
    expect(text).not.toMatch(NO_CONTROL);
    expect(text).toContain('\\x1b[32min-sync');
    const check = formatCheck({ name: 'facts', level: 'fail', detail: FAKE, fix: FAKE });
    expect(check).not.toMatch(NO_CONTROL);
  });

  it("a ship's or rollback's result: rules removed and put back, native chains, a lockout's rule, the ship it returns to", () => {
    const r = printableResult({
      host: 'web1',
      role: 'web',
      outcome: 'applied',
      reason: FAKE,
      ms: 1,
      removed: [`-A INPUT -j ${FAKE}`],
      restored: [`-A INPUT -m comment --comment "${FAKE}" -j ACCEPT`],
      native: [`native nftables inet ${FAKE} input drops tcp/80`],
      restore: { runs: { fwgen: FAKE, commit: FAKE, shippedAt: FAKE, shippedBy: FAKE }, fwgenRemoved: false },
      lockout: {
        source: '192.0.2.1',
        port: 22,
        table: FAKE,
        chain: FAKE,
        packets: FAKE,
        rule: FAKE,
        why: FAKE,
        refused: true,
      },
    });
    expect(JSON.stringify(r)).not.toMatch(/\\u001b/);
    expect(r.restored).toEqual([`-A INPUT -m comment --comment "${printable(FAKE)}" -j ACCEPT`]);
    expect(r.lockout).toMatchObject({ rule: printable(FAKE), chain: printable(FAKE), refused: true });
    expect(r.restore?.runs?.shippedBy).toBe(printable(FAKE));
  });
});
