"""The baseline of `npm run bench:ship`: a threaded Fabric push with no safety steps, as the original
Django+Fabric design did it: per host, upload the role's rules file and run a plain `iptables-restore`
of it. No lock, no test, no backup, no dead-man switch, no confirmation. Debian's python3-fabric.

    /usr/bin/python3 bench/fabric-push.py KEY KNOWN_HOSTS CONCURRENCY REMOTE_PATH HOST:PORT:LOCAL_FILE...
"""
import sys
from concurrent.futures import ThreadPoolExecutor

from fabric import Connection
from paramiko import RejectPolicy


def push(key, known_hosts, remote_path, target):
    host, port, local = target.split(':', 2)
    conn = Connection(host, port=int(port), user='root', connect_timeout=20,
                      connect_kwargs={'key_filename': key, 'look_for_keys': False, 'allow_agent': False})
    # Host keys checked against the lab's known_hosts, as fwgen does (Fabric's default adds unknown keys).
    conn.client.load_host_keys(known_hosts)
    conn.client.set_missing_host_key_policy(RejectPolicy())
    try:
        conn.put(local, remote_path)
        conn.run(f'iptables-restore < {remote_path}', hide=True)
    finally:
        conn.close()


def main():
    key, known_hosts, concurrency, remote_path, *targets = sys.argv[1:]
    with ThreadPoolExecutor(max_workers=int(concurrency)) as pool:
        for f in [pool.submit(push, key, known_hosts, remote_path, t) for t in targets]:
            f.result()  # the first failure fails the run (exit 1, traceback on stderr)


if __name__ == '__main__':
    main()
