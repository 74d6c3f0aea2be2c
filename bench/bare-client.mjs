// The lab's floor for `npm run bench:ship`: a bare ssh2 client (no fwgen) that, for each host, opens
// CONNS connections one after the other, each running `true`, at most CONCURRENCY hosts at once.
// No fwgen design can do less per host with that many connections.
//   node bench/bare-client.mjs KEY CONNS CONCURRENCY HOST[:PORT]...
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';

const [key, conns, concurrency, ...targets] = process.argv.slice(2);
const privateKey = readFileSync(key);

/** One connection: authenticate, run `true`, close. */
const once = (target) =>
  new Promise((resolve, reject) => {
    const [host, port = '22'] = target.split(':');
    const c = new ssh2.Client();
    c.on('ready', () => {
      c.setNoDelay(true); // as fwgen's transport does
      c.exec('true', (err, s) => {
        if (err) return reject(err);
        s.resume();
        s.stderr.resume();
        s.on('exit', (code) => code !== 0 && reject(new Error(`${target}: true exited with ${code}`)));
        s.on('close', () => {
          c.end();
          resolve();
        });
        s.end();
      });
    });
    c.on('error', (e) => reject(new Error(`${target}: ${e.message}`)));
    c.connect({
      host,
      port: Number(port),
      username: 'root',
      privateKey,
      readyTimeout: 20_000,
      hostVerifier: () => true,
    });
  });

let next = 0;
const worker = async () => {
  while (next < targets.length) {
    const t = targets[next++];
    for (let i = 0; i < Number(conns); i++) await once(t);
  }
};
await Promise.all(Array.from({ length: Number(concurrency) }, worker));
