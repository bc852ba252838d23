"""When does each process start delivering a burst? (the parallel-delivery measurement)

    python -m bench.cluster_start [--sessions 200] [--count 1000] [--reps 3] [--baseline PATH]

Starts a redis-server and two `blaze-green run` processes of tests/apps/cluster_app.py (A and
B), SESSIONS raw /feed subscribers on each (one thread reads and discards their bytes), then
A broadcasts COUNT messages in a row (POST /broadcast). A reports when its loop began and
ended; B reports (GET /remote) when it delivered the first and the last message it got from
Redis. Both are time.monotonic(), which processes on one machine share. With --baseline PATH
the same runs use blaze_green from another checkout, alternating with this tree, rep by rep.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import selectors
import socket
import statistics
import sys
import threading
from pathlib import Path

import requests

from blaze_green.testing import ServerProcess, wait_until

from .harness import RedisProc

APPS = Path(__file__).parent.parent / "tests" / "apps"


def ws_socket(port: int, path: str) -> socket.socket:
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
    return s


class Drain:
    def __init__(self, port: int, n: int) -> None:
        self.socks = [ws_socket(port, "/feed") for _ in range(n)]
        self.sel = selectors.DefaultSelector()
        for s in self.socks:
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            for key, _ in self.sel.select(0.05):
                with contextlib.suppress(BlockingIOError):
                    key.fileobj.recv(1 << 16)  # type: ignore[union-attr]

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        for s in self.socks:
            s.close()


def one_run(args: argparse.Namespace, pythonpath: str | None) -> dict[str, float]:
    redis = RedisProc().start()
    env = {"BLAZE_BROKER_URL": redis.url}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(APPS), pythonpath])
    servers: list[ServerProcess] = []
    drains: list[Drain] = []
    try:
        for _ in range(2):
            servers.append(ServerProcess("cluster_app:app", cwd=APPS, env=env).start())
        for s in servers:
            s.wait_for_output("subscribed to", 15)
        a, b = servers
        drains = [Drain(a.port, args.sessions), Drain(b.port, args.sessions)]
        want = 2 * args.sessions

        def counted() -> bool:
            r = requests.get(a.url + "/count", timeout=5).json()
            return bool(r["cluster"] == want)

        wait_until(counted, 15, what="every session counted")
        burst = requests.post(
            a.url + "/broadcast", params={"count": args.count, "tag": "b"}, timeout=120
        ).json()

        def remote() -> dict | None:
            r = requests.get(b.url + "/remote", timeout=5).json()
            return r if r["n"] >= args.count else None

        rem = wait_until(remote, 60, what="B delivered the burst")
        t0 = burst["t0"]
        return {
            "local_ms": (burst["t1"] - t0) * 1000,
            "remote_first_ms": (rem["first"] - t0) * 1000,
            "remote_last_ms": (rem["last"] - t0) * 1000,
        }
    finally:
        for d in drains:
            d.close()
        for s in servers:
            s.stop()
        redis.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster_start")
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--baseline")
    args = p.parse_args(argv)
    trees = [("this tree", None)]
    if args.baseline:
        trees.append((f"baseline {args.baseline}", os.path.abspath(args.baseline)))
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
    for rep in range(args.reps):
        for label, path in trees:
            r = one_run(args, path)
            results[label].append(r)
            print(
                f"rep {rep + 1} {label}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()),
                file=sys.stderr,
                flush=True,
            )
    print(f"Command: `python -m bench.cluster_start {' '.join(argv or sys.argv[1:])}`\n")
    print("| tree | A's local burst ms | B starts delivering ms | B done ms |")
    print("|---|---:|---:|---:|")
    for label, runs in results.items():
        cells = []
        for key in ("local_ms", "remote_first_ms", "remote_last_ms"):
            vals = [r[key] for r in runs]
            cells.append(f"{statistics.median(vals):.1f} ({min(vals):.1f}–{max(vals):.1f})")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
