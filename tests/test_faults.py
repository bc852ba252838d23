"""Issue 14's scale and fault probes at small sizes, each against a real server process
(tests/apps/fault_app.py, the app of `python -m bench.hostile`) and real clients: the C load
generator (bench/loadgen.c) and `bench.hostile.FeedReaders` (raw sockets that answer pings and
record every delivery's seq). The full sizes are `python -m bench.hostile --probes
broadcast15k,redishang,sigterm` (numbers in docs/BENCHMARKS.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from redis_server import RedisServer

from blaze_green.testing import wait_until
from blaze_green.ws.frames import Close, FrameParser, Message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import LOADGEN, build_loadgen  # noqa: E402
from bench.hostile import FeedReaders, ws_connect_rest  # noqa: E402

HOST = "127.0.0.1"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None and not os.environ.get("CI"),
    reason="needs a redis-server binary (apt-get install redis-server); never skipped in CI",
)


def fault_app(serve, **env):
    return serve("fault_app.py", mode="script", args=["0"], env={k: str(v) for k, v in env.items()})


def stats(server, reset: bool = False) -> dict:
    params = {"reset": "1"} if reset else None
    return requests.get(server.url + "/stats", params=params, timeout=5).json()


def wait_for_pongs(server, start: int, rounds: int, sessions: int) -> None:
    """Until `rounds` heartbeat rounds of `sessions` were answered since `start` (the server's
    bytes_received then): the clients send nothing but 14-byte masked pongs to 8-byte pings."""
    wait_until(
        lambda: (
            stats(server)["stats"]["messages"]["bytes_received"] - start >= rounds * sessions * 14
        ),
        30,
        what=f"{rounds} ping rounds answered",
    )


def loadgen(*args: str) -> subprocess.Popen[str]:
    build_loadgen()
    return subprocess.Popen(
        [str(LOADGEN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def ready(run: subprocess.Popen[str]) -> None:
    assert run.stdout is not None
    line = run.stdout.readline()  # the load generator exits (EOF) if it cannot connect
    assert '"ready"' in line, (line, run.stderr.read() if run.poll() is not None else "")


def result(run: subprocess.Popen[str], timeout: float) -> dict:
    try:
        out, err = run.communicate(timeout=timeout)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    found = [line for line in out.splitlines() if '"mode"' in line]
    assert found, (out[-500:], err[-1000:])
    return json.loads(found[-1])


def test_broadcast_to_300_sessions_with_pings_on(serve):
    """300 sessions answering pings every 0.5 s (timeout 3 s); once every session has been
    pinged eight times, 20 broadcasts 0.1 s apart reach every session, in order, none closed."""
    n, count = 300, 20
    server = fault_app(serve, HOSTILE_PING=0.5, HOSTILE_PING_TIMEOUT=3, HOSTILE_SPACING=0.1)
    run = loadgen("-t", "60", "-H", "fanout", HOST, str(server.port), str(n), str(count), "100")
    try:
        ready(run)
        start = stats(server)["stats"]["messages"]["bytes_received"]
        # Eight rounds take longer than ping_interval + ping_timeout: a session that did not
        # answer would have been closed with 1011 by then.
        wait_for_pongs(server, start, rounds=8, sessions=n)
        held = stats(server)
        assert held["feed"] == n
        assert held["stats"]["broadcast"]["ping_timeouts"] == 0
        run.send_signal(signal.SIGUSR1)  # now the control connection sends `go`
        r = result(run, 60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert r["deliveries"] == r["expected"] == n * count, r
    assert r["order_errors"] == 0 and r["parse_errors"] == 0, r
    assert r.get("error") is None, r
    assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"], r
    end = stats(server)["stats"]["broadcast"]
    assert end["ping_timeouts"] == 0 and end["slow_consumer_closes"] == 0


def test_heartbeats_leave_the_collector_nothing_to_age(serve):
    """300 sessions answering pings every 0.3 s and receiving 20 broadcasts a second: over
    1.5 s (five heartbeat rounds, 30 write rounds) they leave fewer than one new live object
    per 10 sessions. Before, each write round made two lists per session that lived until the
    next; gevent's recv kept a Waiter, its bound switch and an argument tuple alive per
    waiting session; and each ping made a pong timer: 2,700 objects here (9 per session), and
    at 15,000 sessions the collector aged enough of them into its oldest generation to run a
    full collection (~200-270 ms) every few seconds."""
    n = 300
    server = fault_app(serve, HOSTILE_PING=0.3, HOSTILE_PING_TIMEOUT=3, HOSTILE_LOOP_HZ=20)
    run = loadgen("-t", "60", "-H", "fanout", HOST, str(server.port), str(n), "1", "100")
    try:
        ready(run)
        start = stats(server)["stats"]["messages"]["bytes_received"]
        wait_for_pongs(server, start, rounds=2, sessions=n)
        params = {"young": "1.5"}
        young = requests.get(server.url + "/stats", params=params, timeout=10).json()
        answered = stats(server)["stats"]["messages"]["bytes_received"] - start
        run.send_signal(signal.SIGUSR1)
        result(run, 30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert young["feed"] == n
    assert answered >= 6 * n * 14  # the heartbeats did run in the window
    assert young["young_objects"] < n / 10, young["young_objects"]


def test_a_shared_write_round_keeps_readers_whole_and_closes_non_readers_with_1013(serve):
    """263 sessions, so every round is written by the writer threads together: 260 readers
    (the load generator) get all 400 broadcasts of 16 KiB in order, while 3 clients that do
    not read (4 KiB receive buffers) pass send_queue_bytes (256 KiB) and are closed with 1013;
    drained afterwards, each reads whole frames and then that close frame."""
    n, count, size, stuck = 260, 400, 16384, 3
    server = fault_app(
        serve,
        HOSTILE_PING=0,
        HOSTILE_SPACING=0,
        HOSTILE_WRITE_THREADS=2,
        HOSTILE_SEND_QUEUE_BYTES=256 * 1024,
        HOSTILE_CLOSE_TIMEOUT=60,
    )
    non_readers = [ws_connect_rest(server.port, rcvbuf=4096, path="/feed") for _ in range(stuck)]
    run = loadgen("-t", "60", "fanout", HOST, str(server.port), str(n), str(count), str(size))
    try:
        r = result(run, 60)  # without -H it sends `go` once its 260 sessions are open
        for sock, rest in non_readers:
            parser = FrameParser(max_message_size=None, expect_masked=False)
            events = parser.feed(rest) if rest else []
            sock.settimeout(10)
            while not any(isinstance(e, Close) for e in events):
                data = sock.recv(65536)
                assert data, "EOF before the close frame"
                events += parser.feed(data)
            messages = [e for e in events if isinstance(e, Message)]
            assert 0 < len(messages) < count
            assert all(len(m.data) == size for m in messages)  # whole frames, then the close
            assert [json.loads(m.data)["seq"] for m in messages] == list(range(len(messages)))
            assert events[-1].code == 1013
            sock.close()  # the session ends now (it waited close_timeout for the close frame)
        wait_until(
            lambda: stats(server)["stats"]["broadcast"]["slow_consumer_closes"] == stuck,
            30,
            what="the three non-readers' sessions ended",
        )
        end = stats(server)["stats"]["broadcast"]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for sock, _ in non_readers:
            sock.close()
    assert r["deliveries"] == r["expected"] == n * count, r
    assert r["order_errors"] == 0 and r["parse_errors"] == 0, r
    assert end["shared_write_rounds"] >= count  # the writer threads wrote the rounds
    assert end["slow_consumer_closes"] == stuck


@pytest.mark.redis
@needs_redis
@pytest.mark.parametrize(
    ("feeds", "rate", "size"),
    [(5, 100, 100), (1, 200, 64 * 1024)],
    ids=["small-messages", "backlog-fills"],
)
def test_redis_hang_keeps_local_delivery_and_resumes_without_duplicates(serve, feeds, rate, size):
    """Redis SIGSTOPped under a broadcast loop: local sessions keep getting every message at
    full speed while the broker detects the outage, the hub is never blocked, the backlog for
    Redis stays within its 8 MiB (64 KiB messages at 200/s fill it past what the kernel buffers
    take); after SIGCONT the other process gets the loop again, no seq twice, none out of order."""
    redis = RedisServer().start()
    readers: list[FeedReaders] = []
    try:
        broker = {"BLAZE_BROKER_URL": redis.url, "HOSTILE_PING": 0}
        a = fault_app(serve, HOSTILE_LOOP_HZ=rate, HOSTILE_LOOP_SIZE=size, **broker)
        b = fault_app(serve, **broker)
        remote = FeedReaders(b.port, 1)
        readers.append(remote)
        local = FeedReaders(a.port, feeds)
        readers.append(local)
        wait_until(lambda: len(remote.got[0]) >= 20, 15, what="delivery through Redis")
        rss_before = stats(a, reset=True)["rss_kib"]
        samples = []
        redis.proc.send_signal(signal.SIGSTOP)
        hung = time.monotonic()
        try:
            # A PUBLISH unanswered for 2 s is an outage: until then the backlog grows.
            deadline = hung + 15
            while "unreachable" not in a.output:
                assert time.monotonic() < deadline, "the hung Redis was never detected"
                samples.append(stats(a))
                time.sleep(0.05)
            detected = time.monotonic()
            samples.append(stats(a))
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()
        seconds = detected - hung
        for got in local.got:  # full speed (the loop is paced by the clock), with slack
            n = sum(1 for t, _ in got if hung <= t < detected)
            assert n >= 0.7 * rate * seconds, (n, seconds)
        # A blocking call on the hub would show up as a lag of the 2 s socket timeout.
        assert samples[-1]["lag_max_ms"] < 500, samples[-1]["lag_max_ms"]
        backlog = max(x["stats"]["broker"]["backlog_bytes"] for x in samples)
        assert backlog <= 8 << 20
        if size > 1024:
            assert backlog > 4 << 20, backlog  # it did fill: the bound is what held it
            assert max(x["rss_kib"] for x in samples) - rss_before < 64 * 1024
        before_cont = remote.got[0][-1][1]
        wait_until(
            lambda: any(t > resumed_at and s > before_cont for t, s in remote.got[0]),
            20,
            what="remote delivery after SIGCONT",
        )
        target = stats(a)["loop_seq"] + 20
        wait_until(lambda: remote.got[0][-1][1] >= target, 20, what="the loop to reach B again")
        assert remote.duplicates() == 0
        assert remote.order_errors() == 0
        assert local.duplicates() == 0 and local.order_errors() == 0
        assert all(c is None for c in local.closes), local.closes
    finally:
        for reader in readers:
            reader.close()
        redis.stop()


def test_sigterm_under_load_closes_every_client_with_1001(serve, tmp_path):
    """200 sessions on /feed under a 20/s broadcast loop; SIGTERM: every client reads close
    1001, every session's on_close ran (counted by the app, written at exit), exit 0 within
    shutdown_timeout (5 s here)."""
    n = 200
    closes = tmp_path / "closes"
    server = fault_app(serve, HOSTILE_LOOP_HZ=20, HOSTILE_SHUTDOWN=5, HOSTILE_CLOSES_FILE=closes)
    run = loadgen("-t", "60", "-E", "idle", HOST, str(server.port), str(n), "60", "/feed")
    try:
        ready(run)
        wait_until(lambda: stats(server)["feed"] == n, 10, what="every session on /feed")
        seq = stats(server)["loop_seq"]
        wait_until(lambda: stats(server)["loop_seq"] >= seq + 5, 10, what="the loop to run")
        started = time.monotonic()
        code = server.stop()
        elapsed = time.monotonic() - started
        r = result(run, 30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert code == 0, server.output[-3000:]
    assert elapsed < 5 + 3, elapsed  # shutdown_timeout, with room for a slow machine
    assert r["close_1001"] == r["closes"] == n, r
    assert r["eof_drops"] == 0, r
    assert r["rx_msgs"] > 0, r  # the loop reached the clients before the shutdown
    assert closes.read_text().split() == [str(n), str(n)]
    assert f"hostile-app exit: on_open {n} on_close {n}" in server.output
