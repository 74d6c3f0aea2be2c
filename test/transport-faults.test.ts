/**
 * Network faults never crash the controller: each becomes a rejected promise (a TransportError)
 * the fleet loop turns into a host outcome. A real ssh2 server on loopback plays the host.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshTransport } from '../src/remote/ssh-transport.js';
import type { RemoteCall } from '../src/remote/scripts.js';
import { TransportError, type ConnectTarget } from '../src/remote/transport.js';

const call = (script: string): RemoteCall => ({ name: 'read', script, args: [] });

const { Server, utils } = ssh2;

/** An ed25519 pair ssh2 can read back: about 1 in 300 of the keys it generates it then calls malformed. */
const keyPair = (): { private: string; public: string } => {
  for (;;) {
    const k = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(k.private) instanceof Error)) return k;
  }
};

describe('SshTransport under network faults', () => {
  let dir: string;
  let knownHosts: string;
  let identity: string;
  const servers: { close(): void }[] = [];
  const hostKey = keyPair();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fwgen-faults-'));
    identity = join(dir, 'id');
    writeFileSync(identity, keyPair().private, { mode: 0o600 });
    knownHosts = join(dir, 'known_hosts');
  });

  afterAll(() => {
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const target = (port: number): ConnectTarget => ({
    name: 'h',
    ssh: {
      host: '127.0.0.1',
      user: 'root',
      port,
      identity,
      knownHosts,
      sudo: false,
      written: ['user', 'port', 'identity', 'knownHosts'],
    },
    acceptNew: false,
    timeoutMs: 3000,
  });
  const listen = (s: NetServer | InstanceType<typeof Server>): Promise<number> =>
    new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)));

  /** An ssh2 server accepting any key; `onExec` gets the raw socket to break. */
  const sshServer = async (onExec: (sock: Socket) => void): Promise<number> => {
    let raw: Socket | undefined;
    const tcp = createServer();
    const srv = new Server({ hostKeys: [hostKey.private] }, (client) => {
      client.on('error', () => undefined);
      client.on('authentication', (ctx) => ctx.accept());
      client.on('ready', () => client.on('session', (accept) => accept().on('exec', () => onExec(raw!))));
    });
    servers.push(tcp, srv);
    tcp.on('connection', (sock) => {
      raw = sock;
      srv.injectSocket(sock);
    });
    const port = await listen(tcp);
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostKey.public}\n`, { flag: 'a' });
    return port;
  };

  it('a peer that closes during the handshake: rejected, not thrown', async () => {
    const tcp = createServer((s) => s.destroy());
    servers.push(tcp);
    const err = await new SshTransport().connect(target(await listen(tcp))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).kind).toBe('unreachable');
  });

  it('a peer that speaks garbage: rejected with a TransportError', async () => {
    const tcp = createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    servers.push(tcp);
    const err = await new SshTransport().connect(target(await listen(tcp))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
  });

  it('a connection reset while a command runs: run() rejects, later runs too, and nothing is left unhandled', async () => {
    const port = await sshServer((sock) => sock.resetAndDestroy());
    const transport = new SshTransport();
    const session = await transport.connect(target(port));
    const err = await session.run(call('true')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).kind).toBe('unreachable');
    await expect(session.run(call('true'))).rejects.toBeInstanceOf(TransportError);
    session.close();
    transport.close();
  });

  it('a peer that stops answering (keepalive timeout) while a command runs: run() rejects', async () => {
    const port = await sshServer((sock) => sock.pause());
    const session = await new SshTransport(undefined, { keepaliveMs: 200, keepaliveCount: 2 }).connect(target(port));
    const err = await session.run(call('sleep 60')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(/connection lost: Keepalive timeout/i);
    session.close();
  });

  it('a half-closed socket (the peer ends its side) while a command runs: run() rejects', async () => {
    const port = await sshServer((sock) => sock.end());
    const session = await new SshTransport().connect(target(port));
    await expect(session.run(call('true'))).rejects.toBeInstanceOf(TransportError);
    session.close();
  });
});
