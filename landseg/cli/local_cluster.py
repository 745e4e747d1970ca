"""``python -m landseg.cli.local_cluster N [--port-base P] [--timeout S] -- <train args>``: N training workers
on 127.0.0.1, for trying multi-worker training (``tf.distribute.MultiWorkerMirroredStrategy``) on one machine.

Each worker is ``python -m landseg.train --strategy multi_worker <train args>`` with its own ``TF_CONFIG``
(``{"cluster": {"worker": ["127.0.0.1:P0", ...]}, "task": {"type": "worker", "index": i}}``), as
TensorFlow documents it; worker 0 is the chief and writes the run folder, the others write to temporary
folders. Their output is printed with a ``[worker i]`` prefix. When one worker fails the others are stopped
(a collective would otherwise wait for it forever). The exit code is the first non-zero worker's, else 0.

On a cluster, start the same command once per host with that host's ``TF_CONFIG`` (landseg/docs/distributed.md).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound briefly, then released)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def tf_config(ports: list[int], index: int, host: str = "127.0.0.1") -> str:
    return json.dumps({"cluster": {"worker": [f"{host}:{p}" for p in ports]}, "task": {"type": "worker", "index": index}})


def worker_command(train_args: list[str]) -> list[str]:
    args = list(train_args)
    if not any(a == "--strategy" or a.startswith("--strategy=") or a.startswith("train.strategy=") for a in args):
        args = ["--strategy", "multi_worker"] + args
    return [sys.executable, "-m", "landseg.train"] + args


def start_workers(n: int, train_args: list[str], ports: list[int] | None = None, env: dict | None = None,
                  **popen) -> list[subprocess.Popen]:
    """Start the ``n`` worker processes (worker 0 = chief); returns them (caller waits)."""
    ports = ports or free_ports(n)
    base = dict(os.environ if env is None else env)
    procs = []
    for i in range(n):
        e = {**base, "TF_CONFIG": tf_config(ports, i)}
        procs.append(subprocess.Popen(worker_command(train_args), env=e, **popen))
    return procs


def _pump(i: int, stream) -> None:
    for line in iter(stream.readline, ""):
        sys.stderr.write(f"[worker {i}] {line}")
    stream.close()


def run_cluster(n: int, train_args: list[str], timeout: float | None = None) -> int:
    procs = start_workers(n, train_args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    pumps = [threading.Thread(target=_pump, args=(i, p.stdout), daemon=True) for i, p in enumerate(procs)]
    for t in pumps:
        t.start()
    t0, code = time.time(), 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed or (timeout is not None and time.time() - t0 > timeout):
                code = failed[0] if failed else 124
                sys.stderr.write(f"local_cluster: {'a worker failed (exit %d)' % code if failed else 'timeout'}; "
                                 "stopping the others\n")
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        code = 130
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for t in pumps:
            t.join(timeout=5)
    return code or next((p.returncode for p in procs if p.returncode), 0)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = []
    if "--" in argv:
        k = argv.index("--")
        argv, train_args = argv[:k], argv[k + 1:]
    p = argparse.ArgumentParser(prog="python -m landseg.cli.local_cluster", description=__doc__.split("\n\n", 1)[0])
    p.add_argument("workers", type=int, help="number of worker processes (>= 1)")
    p.add_argument("--timeout", type=float, default=None, help="stop all workers after this many seconds")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("workers must be >= 1")
    return run_cluster(args.workers, train_args, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
