"""Hostile and at-scale probes of blaze_green with its default limits (issue 14).

    python -m bench.hostile                                   # every probe, default sizes
    python -m bench.hostile --probes idle --sessions 15000 --hold 20
    python -m bench.hostile --probes churn --cycles 10000
    python -m bench.hostile --probes pingflood --pings 1000000
    python -m bench.hostile --probes slowloris --slow 2000
    python -m bench.hostile --probes broadcast15k --sessions 15000 --broadcasts 20
    python -m bench.hostile --probes redishang --feeds 50 --rate 200 --hang 10
    python -m bench.hostile --probes redishang --feeds 1 --rate 200 --loop-size 65536
    python -m bench.hostile --probes sigterm --clients 2000 --rate 20
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
- broadcast15k: SESSIONS sessions from `loadgen fanout` (it answers pings) with server pings
  every 5 s; held 6 s first (pings and pongs counted from the server's byte counters), then
  BROADCASTS 100-byte broadcasts to all of them 0.5 s apart: p50/p99/max delivery latency
  (send time in the message, receive time in the load generator), order, ping timeouts, RSS
  per session.
- redishang: a Redis broker (its own redis-server), server A with a broadcast loop on /feed at
  RATE/s and FEEDS local sessions, server B with one session (remote delivery). Redis is
  SIGSTOPped for HANG s mid-loop, then SIGCONTed: local deliveries/s per session before /
  during / after, A's max event-loop lag and RSS per phase (its 10 ms sleeper), the broker
  backlog (bytes waiting for Redis, max; LOOP_SIZE 65536 fills its 8 MiB) and drops, and on
  B: deliveries per phase, duplicates, order errors and how long after SIGCONT remote
  delivery resumed.
- sigterm: CLIENTS sessions (`loadgen -E idle`) on /feed with a broadcast loop at RATE/s; the
  server gets SIGTERM: close frames with 1001, connections dropped without one, on_close
  count (written by the server at exit), exit status and time to exit (shutdown_timeout 10 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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

    def stats(self, reset: bool = False) -> dict:
        url = f"http://{HOST}:{self.port}/stats" + ("?reset=1" if reset else "")
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


def ws_connect(port: int, rcvbuf: int | None = None, path: str = "/echo") -> socket.socket:
    return ws_connect_rest(port, rcvbuf, path)[0]


def ws_connect_rest(
    port: int, rcvbuf: int | None = None, path: str = "/echo"
) -> tuple[socket.socket, bytes]:
    """A WebSocket handshake; the socket and the bytes read past the 101's head (the first
    frames, when the server sends at once: a feed under a broadcast loop)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((HOST, port))
    request = KEY_REQUEST.format(host=f"{HOST}:{port}").replace("/echo", path, 1)
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head[:100])
    return sock, head[head.index(b"\r\n\r\n") + 4 :]


def masked(opcode: int, payload: bytes) -> bytes:
    assert len(payload) <= 125
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + MASK + body


class FeedReaders:
    """K WebSocket sessions on PATH read by one thread: the (monotonic time, seq) of every
    delivery per session, pings answered, and the close code if the server closes (1006:
    the connection ended without a close frame)."""

    def __init__(self, port: int, k: int, path: str = "/feed") -> None:
        opened = [ws_connect_rest(port, path=path) for _ in range(k)]
        self.socks = [sock for sock, _ in opened]
        self.got: list[list[tuple[float, int]]] = [[] for _ in range(k)]
        self.closes: list[int | None] = [None] * k
        self._bufs = [bytearray(rest) for _, rest in opened]  # frames that came with the 101
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for i, sock in enumerate(self.socks):
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, i)
            self._parse(i, sock, time.monotonic())
        while not self._stop.is_set() and sel.get_map():
            for key, _ in sel.select(0.1):
                i, sock = key.data, key.fileobj
                try:
                    data = sock.recv(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(sock)
                    if self.closes[i] is None:
                        self.closes[i] = 1006
                    continue
                self._bufs[i] += data
                self._parse(i, sock, time.monotonic())  # type: ignore[arg-type]
        sel.close()

    def _parse(self, i: int, sock: socket.socket, now: float) -> None:
        buf, pos = self._bufs[i], 0
        while len(buf) - pos >= 2:
            op, length, head = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if len(buf) - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if op == 0x1:  # {"seq":N,...}
                self.got[i].append((now, int(payload[7 : payload.index(b",")])))
            elif op == 0x9:
                with contextlib.suppress(OSError):
                    sock.send(masked(0xA, payload))
            elif op == 0x8:
                self.closes[i] = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                with contextlib.suppress(OSError):
                    sock.send(masked(0x8, payload[:2]))
        del buf[:pos]

    def snapshot(self) -> list[list[tuple[float, int]]]:
        """Copies of what each session got so far (the reader thread keeps appending)."""
        return [list(got) for got in self.got]

    def count(self, start: float, end: float) -> int:
        return sum(1 for got in self.snapshot() for t, _ in got if start <= t < end)

    def duplicates(self) -> int:
        return sum(len(got) - len({seq for _, seq in got}) for got in self.snapshot())

    def order_errors(self) -> int:
        return sum(
            1 for got in self.snapshot() for a, b in zip(got, got[1:], strict=False) if b[1] <= a[1]
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.close()


class Redis:
    """A throwaway redis-server on a free port (no persistence), for the redishang probe."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redishang needs redis-server (apt-get install redis-server)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hostile-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
            + ["--dir", self.dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGCONT)  # a stopped one cannot act on SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def loadgen_result(lines: list[str], err: str) -> dict:
    found = [line for line in lines if '"mode"' in line]
    if not found:
        raise RuntimeError(f"loadgen gave no result: {lines[-3:]!r} {err[-500:]!r}")
    return json.loads(found[-1])  # type: ignore[no-any-return]


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


def probe_broadcast(n: int, count: int, spacing: float = 0.5, size: int = 100) -> dict:
    build_loadgen()
    server = Server({"HOSTILE_SPACING": str(spacing)})  # pings every 5 s, timeout 20 s
    try:
        time.sleep(1)
        before = server.stats()
        run = subprocess.Popen(
            [str(LOADGEN), "-t", "180", "-H", "-p", str(server.proc.pid), "fanout", HOST]
            + [str(server.port), str(n), str(count), str(size)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert run.stdout is not None
            ready = run.stdout.readline()
            if '"ready"' not in ready:
                out, err = run.communicate(timeout=30)
                raise RuntimeError(f"loadgen not ready: {ready!r} {out[-300:]!r} {err[-300:]!r}")
            # Held for more than one ping interval first: every session is pinged at least once.
            during = server.stats()
            time.sleep(6.0)
            late = server.stats()
            run.send_signal(signal.SIGUSR1)  # now the control connection sends `go`
            out, err = run.communicate(timeout=count * spacing + 120)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        result = loadgen_result(out.splitlines(), err)
        final = server.stats()
        end = final["stats"]["broadcast"]
        rx = (
            late["stats"]["messages"]["bytes_received"]
            - during["stats"]["messages"]["bytes_received"]
        )
        tx = (
            late["stats"]["messages"]["bytes_written"]
            - during["stats"]["messages"]["bytes_written"]
        )
        r = {
            "probe": "broadcast15k",
            "sessions": n,
            "broadcasts": count,
            "spacing_s": spacing,
            "size": size,
            "deliveries": result.get("deliveries"),
            "expected": result.get("expected"),
            "p50_ms": result.get("p50_ms"),
            "p99_ms": result.get("p99_ms"),
            "max_ms": result.get("max_ms"),
            "order_errors": result.get("order_errors"),
            "connect_s": result.get("connect_s"),
            "pings_in_6s": tx // 10,  # 10-byte pings: the only bytes written while held
            "pongs_in_6s": rx // 14,  # 14-byte masked pongs: the only bytes received
            "ping_timeouts": end["ping_timeouts"],
            "slow_consumer_closes": end["slow_consumer_closes"],
            "rss_before_kib": before["rss_kib"],
            "kib_per_session": round((during["rss_kib"] - before["rss_kib"]) / n, 2),
            "server_cpu_pct": result.get("server_cpu_pct"),
            "loadgen_cpu_pct": result.get("gen_cpu_pct"),
            "machine_busy_pct": result.get("machine_busy_pct"),  # of one core, all processes
            "steal_pct": result.get("steal_pct"),  # the hypervisor's share of the machine
            # Collections and their pause (ms) per generation, while the broadcasts were written.
            "gc_during_broadcasts": final["gc_go"],
            "command": f"loadgen -t 180 -H -p PID fanout {HOST} PORT {n} {count} {size}",
        }
        if result.get("error"):
            r["error"] = result["error"]
        return r
    finally:
        server.stop()


def probe_redishang(
    feeds: int,
    rate: float,
    before_s: float = 5.0,
    hang_s: float = 10.0,
    after_s: float = 10.0,
    size: int = 100,
) -> dict:
    redis = Redis()
    servers: list[Server] = []
    readers: list[FeedReaders] = []
    try:
        broker = {"BLAZE_BROKER_URL": redis.url}
        a = Server({**broker, "HOSTILE_LOOP_HZ": str(rate), "HOSTILE_LOOP_SIZE": str(size)})
        servers.append(a)
        b = Server(broker)
        servers.append(b)
        remote = FeedReaders(b.port, 1)
        readers.append(remote)
        local = FeedReaders(a.port, feeds)
        readers.append(local)
        # Remote delivery works before anything is measured.
        wait_for(lambda: len(remote.got[0]) > 5, 15, "remote delivery through Redis")
        phases: dict[str, dict] = {}
        samples: list[dict] = []
        stop = threading.Event()

        def sample() -> None:  # A's stats every 0.25 s, through its own HTTP
            while not stop.is_set():
                s = a.stats()
                broker = s["stats"].get("broker", {})
                samples.append({"t": time.monotonic(), "rss_kib": s["rss_kib"], **broker})
                time.sleep(0.25)

        def phase(name: str, seconds: float) -> None:
            a.stats(reset=True)
            start = time.monotonic()
            time.sleep(seconds)
            end = time.monotonic()
            s = a.stats()
            window = [x for x in samples if start <= x["t"] < end]
            phases[name] = {
                "start": start,
                "end": end,
                "lag_max_ms": s["lag_max_ms"],
                "backlog_max_bytes": max((x.get("backlog_bytes", 0) for x in window), default=0),
                "rss_max_kib": max((x["rss_kib"] for x in window), default=s["rss_kib"]),
            }

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        phase("before", before_s)
        redis.proc.send_signal(signal.SIGSTOP)
        try:
            phase("during", hang_s)
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        cont = time.monotonic()
        phase("after", after_s)
        stop.set()
        watcher.join()
        last = a.stats()["stats"].get("broker", {})
        r: dict = {"probe": "redishang", "feeds": feeds, "rate": rate, "size": size}
        r["hang_s"] = hang_s
        for name, p in phases.items():
            seconds = p["end"] - p["start"]
            r[f"local_rate_{name}"] = round(local.count(p["start"], p["end"]) / seconds / feeds, 1)
            r[f"remote_rate_{name}"] = round(remote.count(p["start"], p["end"]) / seconds, 1)
            r[f"lag_max_ms_{name}"] = p["lag_max_ms"]
            r[f"rss_max_kib_{name}"] = p["rss_max_kib"]
        r["backlog_max_bytes"] = max(p["backlog_max_bytes"] for p in phases.values())
        resumed = [t for t, _ in remote.got[0] if t >= cont]
        r["remote_resumed_s"] = round(resumed[0] - cont, 2) if resumed else None
        r["remote_duplicates"] = remote.duplicates()
        r["remote_order_errors"] = remote.order_errors()
        r["local_duplicates"] = local.duplicates()
        r["local_order_errors"] = local.order_errors()
        r["broker_dropped"] = last.get("dropped")
        r["broker_reconnects"] = last.get("reconnects")
        r["local_closed"] = sum(1 for c in local.closes if c is not None)
        r["local_close_codes"] = sorted({c for c in local.closes if c is not None})
        r["slow_consumer_closes"] = a.stats()["stats"]["broadcast"]["slow_consumer_closes"]
        return r
    finally:
        for reader in readers:
            reader.close()
        for server in servers:
            server.stop()
        redis.stop()


def probe_sigterm(clients: int, rate: float) -> dict:
    build_loadgen()
    closes_file = Path(tempfile.mkstemp(prefix="hostile-closes-")[1])
    server = Server({"HOSTILE_LOOP_HZ": str(rate), "HOSTILE_CLOSES_FILE": str(closes_file)})
    run = None
    try:
        run = subprocess.Popen(
            [str(LOADGEN), "-t", "120", "-E", "idle", HOST, str(server.port), str(clients)]
            + ["120", "/feed"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None
        ready = run.stdout.readline()
        if '"ready"' not in ready:
            raise RuntimeError(f"loadgen not ready: {ready!r}")
        wait_for(lambda: server.stats()["feed"] == clients, 30, "every session on /feed")
        time.sleep(1.0)  # the loop runs with everyone subscribed
        loop_seq = server.stats()["loop_seq"]
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(60)
        except subprocess.TimeoutExpired:
            code = None
        exit_s = time.monotonic() - start
        out, err = run.communicate(timeout=60)
        result = loadgen_result(out.splitlines(), err)
        opens, closes = (int(x) for x in (closes_file.read_text().split() or ["-1", "-1"]))
        return {
            "probe": "sigterm",
            "clients": clients,
            "loop_rate": rate,
            "loop_seq_at_sigterm": loop_seq,
            "exit_code": code,
            "exit_s": round(exit_s, 2),
            "close_frames": result.get("closes"),
            "close_1001": result.get("close_1001"),
            "dropped_without_close": result.get("eof_drops"),
            "on_open": opens,
            "on_close": closes,
        }
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.wait()
        server.stop()
        closes_file.unlink(missing_ok=True)


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
    ap.add_argument("--broadcasts", type=int, default=20)
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument(
        "--rate", type=float, default=None, help="loop rate (redishang 200, sigterm 20)"
    )
    ap.add_argument("--hang", type=float, default=10.0)
    ap.add_argument("--loop-size", type=int, default=100, help="redishang message bytes")
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="tiny sizes")
    ns = ap.parse_args(argv)
    if ns.quick:
        ns.sessions, ns.hold, ns.cycles, ns.pings, ns.slow = 200, 6.0, 400, 50_000, 50
        ns.broadcasts, ns.feeds, ns.hang, ns.clients = 5, 5, 3.0, 100
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
        elif name == "broadcast15k":
            r = probe_broadcast(ns.sessions, ns.broadcasts)
        elif name == "redishang":
            quick = ns.quick
            r = probe_redishang(
                ns.feeds,
                ns.rate or 200.0,
                before_s=2.0 if quick else 5.0,
                hang_s=ns.hang,
                after_s=4.0 if quick else 10.0,
                size=ns.loop_size,
            )
        elif name == "sigterm":
            r = probe_sigterm(ns.clients, ns.rate or 20.0)
        else:
            ap.error(f"unknown probe {name!r}")
        print(json.dumps(r), flush=True)
        results.append(r)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
