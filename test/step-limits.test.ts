/**
 * Issue 16, finding 6: each remote step has a deadline and an output cap. A real ssh2 server on
 * loopback plays a host whose step never answers, or never stops printing; the host's step fails
 * with a clear reason (a TransportError the fleet loop turns into the host's outcome), and the
 * connection stays usable. test/e2e/host-ssh.test.ts shows the same against real sshd hosts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshTransport, stepDeadlineMs, type StepLimits } from '../src/remote/ssh-transport.js';
import { applyCall } from '../src/remote/apply.js';
import { commitCall } from '../src/remote/commit.js';
import { readCall } from '../src/remote/read.js';
import { SWITCH_WAIT_S, type RemoteCall } from '../src/remote/scripts.js';
import { TransportError, type ConnectTarget, type Session } from '../src/remote/transport.js';

const { Server, utils } = ssh2;

const keyPair = (): { private: string; public: string } => {
  for (;;) {
    const k = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(k.private) instanceof Error)) return k;
  }
};

/** The server's behaviour is chosen by the script text: `hang`, `flood`, `flood-stderr`, `print N`. */
const call = (script: string, waitS?: number): RemoteCall => ({
  name: 'read',
  script,
  args: [],
  ...(waitS ? { waitS } : {}),
});

describe('remote steps: deadline and output cap', () => {
  let dir: string;
  let port: number;
  let server: InstanceType<typeof Server>;
  const target = (): ConnectTarget => ({
    name: 'h',
    ssh: {
      host: '127.0.0.1',
      user: 'root',
      port,
      identity: join(dir, 'id'),
      knownHosts: join(dir, 'known_hosts'),
      sudo: false,
      written: ['user', 'port', 'identity', 'knownHosts'],
    },
    acceptNew: false,
    timeoutMs: 3000,
  });
  const limits: StepLimits = { stepMs: 400, outputBytes: 1024 * 1024 };
  const open = (l = limits): Promise<Session> => new SshTransport(undefined, undefined, l).connect(target());
  const failure = async (p: Promise<unknown>) => {
    const t0 = Date.now();
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TransportError);
    return { err: err as TransportError, ms: Date.now() - t0 };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-limits-'));
    const hostKey = keyPair();
    writeFileSync(join(dir, 'id'), keyPair().private, { mode: 0o600 });
    server = new Server({ hostKeys: [hostKey.private] }, (client) => {
      client.on('error', () => undefined);
      client.on('authentication', (ctx) => ctx.accept());
      client.on('ready', () =>
        client.on('session', (accept) =>
          accept().on('exec', (acceptExec, _reject, info) => {
            const stream = acceptExec();
            stream.on('error', () => undefined);
            const script = /^sh -c '([^']*)'/.exec(info.command)?.[1] ?? '';
            if (script === 'hang') return;
            if (script.startsWith('flood')) {
              const out = script === 'flood' ? stream : stream.stderr;
              const chunk = Buffer.alloc(64 * 1024, 'y');
              const pump = () => {
                while (out.write(chunk));
                out.once('drain', pump);
              };
              return pump();
            }
            const n = Number(/^print (\d+)$/.exec(script)?.[1] ?? 0);
            stream.write(Buffer.alloc(n, 'x'));
            stream.exit(0);
            stream.end();
          }),
        ),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as { port: number }).port;
    writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostKey.public}\n`);
  });

  afterAll(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a step that never answers fails at its deadline with a clear reason; the next step on the connection runs', async () => {
    const session = await open();
    const { err, ms } = await failure(session.run(call('hang')));
    expect(err.kind).toBe('step-timeout');
    expect(err.message).toBe(
      'the read step did not finish within 0.4 s (--step-timeout); the host is stuck or too slow',
    );
    expect(ms).toBeGreaterThanOrEqual(350);
    expect(ms).toBeLessThan(2000);
    const next = await session.run(call('print 3'));
    expect(next).toEqual({ code: 0, stdout: 'xxx', stderr: '' });
    session.close();
  });

  it("a step's own wait (the dead-man switch) extends its deadline", async () => {
    const session = await open();
    const { err, ms } = await failure(session.run(call('hang', 1)));
    expect(err.message).toMatch(/within 1\.4 s/);
    expect(ms).toBeGreaterThanOrEqual(1300);
    session.close();
  });

  it('a step that floods stdout or stderr is cut off at the cap; output up to the cap is kept; the connection goes on', async () => {
    const session = await open({ stepMs: 30_000, outputBytes: 1024 * 1024 });
    for (const flood of ['flood', 'flood-stderr']) {
      const { err, ms } = await failure(session.run(call(flood)));
      expect(err.kind).toBe('output-limit');
      expect(err.message).toBe(
        'the read step sent more than 1 MiB of output; stopped reading it (a broken or hostile host?)',
      );
      expect(ms).toBeLessThan(5000);
    }
    const full = await session.run(call(`print ${1024 * 1024}`));
    expect(full.stdout.length).toBe(1024 * 1024);
    session.close();
  });

  it('deadlines: a step gets the limit; apply adds --timeout and the wait for the switch; commit that wait', () => {
    const paths = { rules: '/etc/iptables.up.rules', rules6: '/etc/ip6tables.up.rules' };
    const l: StepLimits = { stepMs: 120_000, outputBytes: 1 };
    expect(stepDeadlineMs(readCall(paths, false), l)).toBe(120_000);
    const settings = { id: 'r', ipv6: false, owner: 'o', timeoutS: 30, keep: 1, breakLock: false, fp4: '-', fp6: '-' };
    expect(stepDeadlineMs(applyCall(paths, settings, []), l)).toBe(120_000 + (30 + SWITCH_WAIT_S) * 1000);
    expect(stepDeadlineMs(commitCall(paths, 'r', false, '-', '{}'), l)).toBe(120_000 + SWITCH_WAIT_S * 1000);
  });
});
