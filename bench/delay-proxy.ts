/**
 * A delaying TCP proxy for the latency scenario of `npm run bench:ship` (this kernel has no netem):
 * listens on `listen` (loopback) and forwards each connection to `to`, holding every chunk for
 * `delayMs` in each direction, so a round trip through it takes 2 × `delayMs` more. Timers of equal
 * duration fire in the order they were set, so bytes and the end of stream keep their order.
 */
import net from 'node:net';

export interface DelayProxy {
  /** Connections accepted so far. */
  readonly accepted: () => number;
  /**
   * Client flights so far: times the client sent after the server had sent last (or first), summed
   * over connections. Each waits for the server, so it counts round trips (the TCP handshake aside).
   */
  readonly flights: () => number;
  close(): Promise<void>;
}

type Endpoint = { host: string; port: number };

/** Starts one proxy; resolves once it listens. */
export function startDelayProxy(listen: Endpoint, to: Endpoint, delayMs: number): Promise<DelayProxy> {
  const open = new Set<net.Socket>();
  let accepted = 0;
  let flights = 0;
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(to);
    for (const s of [client, upstream]) {
      open.add(s);
      s.setNoDelay(true);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined); // the 'close' that follows ends the other side
    }
    let last: 'up' | 'down' | undefined;
    client.on('data', () => {
      if (last !== 'up') flights++;
      last = 'up';
    });
    upstream.on('data', () => (last = 'down'));
    pipeDelayed(client, upstream, delayMs);
    pipeDelayed(upstream, client, delayMs);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () =>
      resolve({
        accepted: () => accepted,
        flights: () => flights,
        close: () =>
          new Promise((done) => {
            for (const s of open) s.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}

function pipeDelayed(from: net.Socket, to: net.Socket, ms: number): void {
  from.on('data', (d: Buffer) => setTimeout(() => to.writable && to.write(d), ms));
  from.on('end', () => setTimeout(() => to.writable && to.end(), ms));
  // A reset or error closes without 'end': end the other side too, after what is still in flight.
  from.on('close', () => setTimeout(() => to.writable && to.end(), ms + 1));
}
