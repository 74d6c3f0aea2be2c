/**
 * The daemon harness itself, without fwgen: a real dockerd and a real fail2ban-server in lab hosts,
 * judged by real TCP connections from another lab host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { HTTPD_BODY, httpGet, startDockerd, type DockerDaemon } from '../support/docker-daemon.js';

const NET = '198.18.77';

it('has the prerequisites of the end-to-end tests (root, iptables, ...)', () => {
  expect(labPrereqs()).toEqual([]);
});

describe('a real dockerd in a lab host', () => {
  let lab: Lab;
  let dockerd: DockerDaemon;

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwdk',
      hosts: [
        { name: 'docker', ipv4: `${NET}.10`, privateFs: true },
        { name: 'client', ipv4: `${NET}.20` },
      ],
    });
    dockerd = await startDockerd(lab, 'docker');
  }, 180_000);

  afterAll(async () => {
    await dockerd?.stop();
    await lab?.destroy();
  });

  const get = (port: number) => httpGet(lab, 'client', `${NET}.10`, port);

  it('serves a published port to another host, before and after a daemon restart', async () => {
    console.log(`dockerd startup: ${dockerd.startupMs} ms`);
    await dockerd.runHttpd({ hostPort: 8080 });
    expect(await lab.probe('client', 'docker', 8080)).toBe('open');
    expect(await get(8080)).toEqual({ status: 'HTTP/1.1 200 OK', body: HTTPD_BODY });
    expect(await lab.probe('client', 'docker', 8081)).not.toBe('open');
    await dockerd.restart();
    console.log(`dockerd restart: ${dockerd.startupMs} ms`);
    await dockerd.waitContainer('web', 8080);
    expect(await lab.probe('client', 'docker', 8080)).toBe('open');
    expect(await get(8080)).toEqual({ status: 'HTTP/1.1 200 OK', body: HTTPD_BODY });
  }, 120_000);
});
