"""Hostile and at-scale probes of blaze_green with its default limits (issue 14).

    python -m bench.hostile                                   # every probe, default sizes
    python -m bench.hostile --probes idle --sessions 15000 --hold 20
    python -m bench.hostile --probes churn --cycles 10000
    python -m bench.hostile --probes pingflood --pings 1000000
    python -m bench.hostile --probes slowloris --slow 2000
    python -m bench.hostile --quick                           # tiny sizes (a smoke run)

Each probe starts its own server (`bench/hostile_app.py`, default `App` limits, pings every
5 s), reads the server's RSS, fds and session count from `GET /stats`, and prints one JSON
line per probe, then a markdown table. Like the rest of bench/, nothing here asserts: the
numbers go to docs/BENCHMARKS.md with the command that produced them.

- idle: N sessions from the C load generator (`loadgen idle`, which answers pings) held for
  HOLD s with server pings every 5 s (ping_timeout the default 20 s): RSS per session, pongs
  received, and whether every session survived (a ping unanswered in time closes with 1011).
- churn: CYCLES WebSocket handshake + close-frame cycles (4 client threads): fds, RSS and
  registry before and after.
- pingflood: one client that never reads sends PINGS pings with 125-byte payloads (131 bytes
  each, the issue's 135 MB for 1M): RSS before / peak / after, time until the session left
  the registry (its 1013) and until the connection was dropped.
- slowloris: SLOW connections that send a request line and then one header byte a second,
  and as many that send nothing: time until the server closed them (header_timeout 10 s),
  RSS before / during / after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bench.harness import LOADGEN, build_loadgen, free_port, proc_rss_kib

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
KEY_REQUEST = (
    "GET /echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
MASK = b"\x01\x02\x03\x04"


def log(msg: str) -> None:
    print(f"hostile: {msg}", file=sys.stderr, flush=True)


class Server:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        child_env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **(env or {}))
        child_env.pop("BLAZE_GREEN_NO_PATCH", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "hostile_app.py"), str(self.port)],
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.stats()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("hostile_app did not start") from None
                time.sleep(0.1)

    def stats(self) -> dict:
        url = f"http://{HOST}:{self.port}/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def rss(self) -> int:
        return proc_rss_kib(self.proc.pid) or -1

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ws_connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((HOST, port))
    sock.sendall(KEY_REQUEST.format(host=f"{HOST}:{port}").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head[:100])
    return sock


def masked(opcode: int, payload: bytes) -> bytes:
    assert len(payload) <= 125
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + MASK + body


# -- probes ---------------------------------------------------------------------------------


def probe_idle(n: int, hold: float) -> dict:
    build_loadgen()
    server = Server()
    try:
        time.sleep(1)
        before = server.stats()
        run = subprocess.Popen(
            [str(LOADGEN), "-t", "120", "idle", HOST, str(server.port), str(n), str(hold)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None
        ready = run.stdout.readline()
        during = server.stats() if '"ready"' in ready else None
        mid = time.monotonic()
        time.sleep(max(0.0, hold - 1.0))
        late = server.stats()  # before the load generator closes its connections
        held = time.monotonic() - mid
        out, err = run.communicate(timeout=hold + 180)
        end = server.stats()
        found = [line for line in [ready, *out.splitlines()] if '"mode"' in line]
        if not found:
            raise RuntimeError(f"loadgen gave no result: {ready!r} {out[-300:]!r} {err[-500:]!r}")
        result = json.loads(found[-1])
        ping_timeouts = end["stats"]["broadcast"]["ping_timeouts"]
        # After the handshakes the only bytes the clients send are pongs to the server's
        # 8-byte pings: 14 bytes each on the wire (2 header, 4 mask, 8 payload).
        # And the only bytes the server writes are its pings: 10 bytes each (2 header, 8).
        pongs = pings = None
        if during is not None:
            received = late["stats"]["messages"]["bytes_received"]
            pongs = (received - during["stats"]["messages"]["bytes_received"]) // 14
            written = late["stats"]["messages"]["bytes_written"]
            pings = (written - during["stats"]["messages"]["bytes_written"]) // 10
        r = {
            "probe": "idle",
            "sessions": n,
            "hold_s": hold,
            "opened": result.get("opened"),
            "alive_at_end": result.get("alive_at_end"),
            "connect_s": result.get("connect_s"),
            "rss_before_kib": before["rss_kib"],
            "rss_during_kib": during and during["rss_kib"],
            "kib_per_session": during and (during["rss_kib"] - before["rss_kib"]) / n,
            "ping_timeouts": ping_timeouts,
            "pings_sent": pings,
            "pongs_received": pongs,
            "measured_s": round(held, 1),
            "command": f"loadgen -t 120 idle {HOST} PORT {n} {hold}",
        }
        if err.strip():
            r["loadgen_stderr"] = err.strip()[-300:]
        return r
    finally:
        server.stop()


def probe_churn(cycles: int, threads: int = 4) -> dict:
    server = Server()
    close_frame = masked(0x8, (1000).to_bytes(2, "big"))
    errors: list[str] = []

    def worker(count: int) -> None:
        for _ in range(count):
            try:
                sock = ws_connect(server.port)
                sock.sendall(close_frame)
                while sock.recv(4096):  # the server's close frame, then its FIN
                    pass
                sock.close()
            except OSError as exc:
                errors.append(str(exc))

    try:
        worker(200)  # warm up
        time.sleep(1)
        before = server.stats()
        start = time.monotonic()
        pool = [threading.Thread(target=worker, args=(cycles // threads,)) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.monotonic() - start
        deadline = time.monotonic() + 10
        while server.stats()["sessions"] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        after = server.stats()
        return {
            "probe": "churn",
            "cycles": cycles // threads * threads,
            "elapsed_s": round(elapsed, 2),
            "errors": len(errors),
            "fds_before": before["fds"],
            "fds_after": after["fds"],
            "sessions_before": before["sessions"],
            "sessions_after": after["sessions"],
            "rss_before_kib": before["rss_kib"],
            "rss_after_kib": after["rss_kib"],
            "rss_change_pct": round(100 * (after["rss_kib"] / before["rss_kib"] - 1), 1),
        }
    finally:
        server.stop()


def probe_pingflood(pings: int) -> dict:
    server = Server()
    try:
        warm = ws_connect(server.port)
        warm.close()
        time.sleep(1)
        before = server.rss()
        sock = ws_connect(server.port, rcvbuf=4096)
        batch = masked(0x9, b"p" * 125) * 1000
        peak = [before]
        left_at: list[float] = []
        stop = threading.Event()
        start = time.monotonic()

        def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], server.rss())
                if not left_at and server.stats()["sessions"] == 0:
                    left_at.append(time.monotonic() - start)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        sent = 0
        dropped_at = None
        try:
            while sent < pings:
                sock.sendall(batch)
                sent += 1000
        except OSError:
            dropped_at = time.monotonic() - start
        sent_s = time.monotonic() - start
        if dropped_at is None:  # everything was sent: wait for the drop
            sock.settimeout(30)
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
            dropped_at = time.monotonic() - start
        time.sleep(1)
        stop.set()
        watcher.join()
        sock.close()
        after = server.rss()
        stats = server.stats()["stats"]["broadcast"]
        return {
            "probe": "pingflood",
            "pings_sent": sent,
            "wire_mb": round(sent * 131 / 1e6, 1),
            "send_s": round(sent_s, 2),
            "session_left_s": round(left_at[0], 2) if left_at else None,
            "dropped_s": round(dropped_at, 2),
            "slow_consumer_closes": stats.get("slow_consumer_closes"),
            "rss_before_kib": before,
            "rss_peak_kib": peak[0],
            "rss_after_kib": after,
            "rss_growth_kib": peak[0] - before,
        }
    finally:
        server.stop()


def probe_slowloris(n: int) -> dict:
    server = Server()
    socks: list[socket.socket] = []
    try:
        time.sleep(1)
        before = server.rss()
        slow = []
        for _ in range(n):
            s = socket.create_connection((HOST, server.port), timeout=10)
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        silent = [socket.create_connection((HOST, server.port), timeout=10) for _ in range(n)]
        socks = slow + silent
        start = time.monotonic()
        poller = select.poll()
        index = {s.fileno(): i for i, s in enumerate(socks)}
        for s in socks:
            poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
        closed_at: dict[int, float] = {}
        during = before
        last_tick = 0.0
        while len(closed_at) < len(socks) and time.monotonic() - start < 60:
            now = time.monotonic()
            if now - last_tick >= 1.0:  # one more header byte from every slow client
                last_tick = now
                for i, s in enumerate(slow):
                    if i not in closed_at:
                        with contextlib.suppress(OSError):
                            s.send(b"a")
                during = max(during, server.rss())
            for fd, _ in poller.poll(100):
                i = index[fd]
                if i not in closed_at:
                    closed_at[i] = time.monotonic() - start
                    poller.unregister(fd)
        slow_times = sorted(t for i, t in closed_at.items() if i < n)
        silent_times = sorted(t for i, t in closed_at.items() if i >= n)
        for s in socks:
            s.close()
        socks = []
        time.sleep(1)
        served = server.stats()  # and the server still answers
        return {
            "probe": "slowloris",
            "slow": n,
            "silent": n,
            "slow_closed": len(slow_times),
            "silent_closed": len(silent_times),
            "slow_closed_s": [round(slow_times[0], 1), round(slow_times[-1], 1)]
            if slow_times
            else None,
            "silent_closed_s": [round(silent_times[0], 1), round(silent_times[-1], 1)]
            if silent_times
            else None,
            "rss_before_kib": before,
            "rss_during_kib": during,
            "rss_after_kib": served["rss_kib"],
        }
    finally:
        for s in socks:
            s.close()
        server.stop()


def markdown(results: list[dict]) -> str:
    lines = ["| probe | result |", "| --- | --- |"]
    for r in results:
        shown = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("probe", "command"))
        lines.append(f"| {r['probe']} | {shown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n")[0])
    ap.add_argument("--probes", default="idle,churn,pingflood,slowloris")
    ap.add_argument("--sessions", type=int, default=15000)
    ap.add_argument("--hold", type=float, default=20.0)
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument("--pings", type=int, default=1_000_000)
    ap.add_argument("--slow", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="tiny sizes")
    ns = ap.parse_args(argv)
    if ns.quick:
        ns.sessions, ns.hold, ns.cycles, ns.pings, ns.slow = 200, 6.0, 400, 50_000, 50
    results = []
    for name in ns.probes.split(","):
        log(f"running {name}")
        if name == "idle":
            r = probe_idle(ns.sessions, ns.hold)
        elif name == "churn":
            r = probe_churn(ns.cycles)
        elif name == "pingflood":
            r = probe_pingflood(ns.pings)
        elif name == "slowloris":
            r = probe_slowloris(ns.slow)
        else:
            ap.error(f"unknown probe {name!r}")
        print(json.dumps(r), flush=True)
        results.append(r)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
