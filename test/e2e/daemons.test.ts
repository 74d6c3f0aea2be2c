/**
 * The daemon harness itself, without fwgen: a real dockerd and a real fail2ban-server in lab hosts,
 * judged by real TCP connections from another lab host.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLab, labPrereqs, type Lab } from '../support/lab.js';
import { HTTPD_BODY, httpGet, startDockerd, type DockerDaemon } from '../support/docker-daemon.js';
import { startFail2ban, type Fail2banDaemon } from '../support/fail2ban-daemon.js';

const NET = '198.18.77';

// FWGEN_CAPTURE_FIXTURES=1 (scripts/capture-iptables-fixtures.sh) rewrites the recorded iptables-save fixtures
const FIXTURES = 'test/fixtures/iptables-save';
function captureFixture(name: string, text: string): void {
  if (process.env.FWGEN_CAPTURE_FIXTURES !== '1') return;
  mkdirSync(FIXTURES, { recursive: true });
  writeFileSync(`${FIXTURES}/${name}`, text);
}

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
    const t0 = Date.now();
    dockerd = await startDockerd(lab, 'docker');
    console.log(`startDockerd (cgroups, daemon, image import): ${Date.now() - t0} ms`);
  }, 180_000);

  afterAll(async () => {
    await dockerd?.stop();
    await lab?.destroy();
  });

  const get = (port: number) => httpGet(lab, 'client', `${NET}.10`, port);

  it('serves a published port to another host, before and after a daemon restart', async () => {
    console.log(`dockerd start until the API answered: ${dockerd.startupMs} ms`);
    await dockerd.runHttpd({ name: 'web', hostPort: 8080 }); // --restart always
    expect(await lab.probe('client', 'docker', 8080)).toBe('open');
    expect(await get(8080)).toEqual({ status: 'HTTP/1.1 200 OK', body: HTTPD_BODY });
    expect(await lab.probe('client', 'docker', 8081)).toBe('refused'); // nothing listens there
    const pidBefore = await dockerd.dockerOk(['inspect', '-f', '{{.State.Pid}}', 'web']);
    expectDockerChains(await dockerd.iptablesSave());

    await dockerd.restart({
      whileStopped: async () => expect(await lab.probe('client', 'docker', 8080)).not.toBe('open'),
    });
    console.log(`dockerd restart until the API answered: ${dockerd.startupMs} ms`);
    await dockerd.waitContainer('web', 8080);
    // the container really stopped with the daemon and was started again by its restart policy
    expect(await dockerd.dockerOk(['inspect', '-f', '{{.State.Pid}}', 'web'])).not.toBe(pidBefore);
    expect(await lab.probe('client', 'docker', 8080)).toBe('open');
    expect(await get(8080)).toEqual({ status: 'HTTP/1.1 200 OK', body: HTTPD_BODY });
    const full = await dockerd.iptablesSave();
    expectDockerChains(full);
    captureFixture('docker.txt', await dockerd.iptablesSave('filter'));
    captureFixture('docker-full.txt', full);
  }, 120_000);
});

/** What dockerd 20.10 writes into a host's ruleset, with the container `web` published on 8080. */
function expectDockerChains(save: string): void {
  const filter = save.slice(save.indexOf('*filter'), save.indexOf('COMMIT', save.indexOf('*filter')));
  const nat = save.slice(save.indexOf('*nat'), save.indexOf('COMMIT', save.indexOf('*nat')));
  expect(filter).toMatch(/^:FORWARD DROP /m); // docker turned ip_forward on, so it closes FORWARD
  for (const c of ['DOCKER', 'DOCKER-USER', 'DOCKER-ISOLATION-STAGE-1', 'DOCKER-ISOLATION-STAGE-2']) {
    expect(filter).toMatch(new RegExp(`^:${c} - `, 'm'));
  }
  expect(filter).toMatch(/^-A FORWARD -j DOCKER-USER$/m);
  const container = String.raw`198\.19\.255\.\d+`;
  expect(filter).toMatch(
    new RegExp(
      String.raw`^-A DOCKER -d ${container}/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT$`,
      'm',
    ),
  );
  expect(nat).toMatch(/^-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER$/m);
  expect(nat).toMatch(
    new RegExp(
      String.raw`^-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination ${container}:80$`,
      'm',
    ),
  );
}

describe('a real fail2ban-server in a lab host', () => {
  const NET2 = '198.18.78';
  const [bad, good, brute] = [`${NET2}.21`, `${NET2}.22`, `${NET2}.23`];
  let lab: Lab;
  let f2b: Fail2banDaemon;

  beforeAll(async () => {
    lab = await createLab({
      prefix: 'fwfb',
      hosts: [
        { name: 'guarded', ipv4: `${NET2}.10`, privateFs: true, listen: [8080, 9090] },
        { name: 'client', ipv4: `${NET2}.20`, extraIpv4: [bad, good, brute] },
      ],
    });
    f2b = await startFail2ban(lab, 'guarded', { ports: [8080] });
  }, 120_000);

  afterAll(async () => {
    await f2b?.stop();
    await lab?.destroy();
  });

  const probe = (source: string, port = 8080) => lab.probe('client', 'guarded', port, { source });

  it('bans one source on the jail port only, and unbans it again', async () => {
    console.log(`fail2ban startup: ${f2b.startupMs} ms`);
    // fail2ban 1.0 starts iptables actions on demand: no chain, no jump until the first ban
    expect(await f2b.iptablesSave('filter')).not.toContain(f2b.chain);
    expect(await probe(bad)).toBe('open');

    await f2b.ban(bad);
    expect(await probe(bad)).toBe('refused');
    expect(await probe(good)).toBe('open');
    expect(await probe(bad, 9090)).toBe('open'); // iptables-multiport: other ports stay reachable
    expect((await f2b.status()).bannedIps).toEqual([bad]);
    const rules = await f2b.iptablesSave('filter');
    expect(rules).toMatch(new RegExp(`^-A INPUT -p tcp -m multiport --dports 8080 -j ${f2b.chain}$`, 'm'));
    expect(rules).toContain(`-A ${f2b.chain} -s ${bad}/32 -j REJECT --reject-with icmp-port-unreachable`);
    captureFixture('fail2ban.txt', rules);

    await f2b.unban(bad);
    expect(await probe(bad)).toBe('open');
    expect((await f2b.status()).bannedIps).toEqual([]);
    // an unban deletes the source's rule only: the chain and its jump stay until the server stops
    expect(await f2b.iptablesSave('filter')).toContain(`-A INPUT -p tcp -m multiport --dports 8080 -j ${f2b.chain}`);
  });

  it('bans a source that fails in the watched log', async () => {
    await f2b.fail(brute);
    expect(await probe(brute)).toBe('refused');
    expect(await probe(good)).toBe('open');
    const st = await f2b.status();
    expect(st.bannedIps).toEqual([brute]);
    expect(st.totalFailed).toBeGreaterThanOrEqual(1);
  });

  it('removes its chain and jump when stopped', async () => {
    expect(await f2b.bannedInIptables()).toEqual([brute]);
    await f2b.stop();
    const rules = await lab.execOk('guarded', ['iptables-save', '-t', 'filter']);
    expect(rules).not.toContain(f2b.chain);
    expect(await probe(brute)).toBe('open');
  });
});
