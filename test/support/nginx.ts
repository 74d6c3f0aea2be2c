/**
 * A real nginx (Debian's) serving a published tree from a lab host's network namespace, as an origin
 * of pull mode. Everything it writes (config, pid, logs, temp folders) lives in a folder of the test;
 * it never reads the machine's nginx config nor starts the machine's service.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROLLER, type Lab } from './lab.js';

/** How the origin answers under /fleet/: the tree, or every request with one status. */
export type OriginMode = 'serve' | 404 | 500;

export interface Nginx {
  /** `http://ADDR:PORT/fleet/`: the inventory's agent.origin. */
  readonly url: string;
  /** Starts (again) with the given mode; resolves once it listens. */
  start(mode?: OriginMode): Promise<void>;
  /** Stops it; resolves once it is gone (connections are then refused). */
  stop(): Promise<void>;
  /** Access log lines so far: `ADDR "GET /fleet/... HTTP/1.1" STATUS BYTES_SENT REQUEST_LENGTH`. */
  accessLog(): string[];
}

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) ?? 'nginx';

/** The config: blobs are immutable, manifests revalidated on every request (README, Pull mode). */
function config(dir: string, tree: string, addr: string, port: number, mode: OriginMode): string {
  const fleet =
    mode === 'serve'
      ? `location /fleet/ { alias ${tree}/; }
    location /fleet/blobs/ { alias ${tree}/blobs/; add_header Cache-Control "public, max-age=31536000, immutable"; }
    location /fleet/roles/ { alias ${tree}/roles/; add_header Cache-Control "no-cache"; }`
      : `location /fleet/ { return ${mode}; }`;
  return `worker_processes 1;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 256; }
http {
  default_type application/octet-stream;
  log_format fwgen '$remote_addr "$request" $status $bytes_sent $request_length';
  access_log ${dir}/access.log fwgen;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen ${addr}:${port};
    ${fleet}
  }
}
`;
}

/** nginx in `host`'s namespace on its address, serving `tree` at /fleet/; not started yet. */
export function labNginx(lab: Lab, host: string, tree: string, dir: string, port = 8080): Nginx {
  const h = lab.hosts.get(host);
  if (!h) throw new Error(`nginx: no lab host ${host}`);
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  writeFileSync(join(dir, 'access.log'), '', { flag: 'a' });
  let child: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  };
  return {
    url: `http://${h.ipv4}:${port}/fleet/`,
    async start(mode = 'serve') {
      await stop();
      writeFileSync(join(dir, 'nginx.conf'), config(dir, tree, h.ipv4, port, mode));
      let out = '';
      const c = spawn(
        'ip',
        ['netns', 'exec', h.ns, NGINX, '-e', 'stderr', '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      c.stdout!.on('data', (d) => (out += d));
      c.stderr!.on('data', (d) => (out += d));
      child = c;
      for (let i = 0; i < 200; i++) {
        if (c.exitCode !== null) throw new Error(`nginx exited: ${out}`);
        if ((await lab.probe(CONTROLLER, h.ipv4, port, { timeoutMs: 500 })) === 'open') return;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`nginx did not listen on ${h.ipv4}:${port}: ${out}`);
    },
    stop,
    accessLog: () => readFileSync(join(dir, 'access.log'), 'utf8').split('\n').filter(Boolean),
  };
}
