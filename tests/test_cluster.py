"""The Redis broker with real processes: two `blaze-green run` servers, gunicorn -w 2, a real
redis-server on a free port (killed and restarted in one test), clients on every process.

Tests that need Redis skip only where no `redis-server` binary exists, and never in CI
(CI=true): there they fail instead.
"""

import asyncio
import contextlib
import json
import os
import selectors
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from redis_server import RedisServer
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from wsraw import RawWS

from blaze_green.testing import wait_until

EXAMPLES = Path(__file__).parent.parent / "examples"

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None and not os.environ.get("CI"),
    reason="needs a redis-server binary (apt-get install redis-server); never skipped in CI",
)


@pytest.fixture
def redis_server():
    server = RedisServer().start()  # in CI without the binary this fails, as it should
    yield server
    server.stop()


SUBSCRIBED = "subscribed to blaze_green:ctl:0"


def subscribed(server, processes=1):
    """A process hears the others once it has subscribed (logged), a moment after it listens."""
    wait_until(lambda: server.output.count(SUBSCRIBED) >= processes, 10, what=SUBSCRIBED)
    return server


def cluster(serve, redis_server, n=2, **env):
    env = {"BLAZE_BROKER_URL": redis_server.url, **env}
    return [subscribed(serve("cluster_app:app", env=env)) for _ in range(n)]


# -- the wire format and the URL (no Redis needed) ----------------------------------------------


def test_wire_format_round_trip():
    from blaze_green.broker.redis import pack_message, unpack_message

    wire = pack_message(b"host:12:ab", "/rooms/é", 2, b"\x00payload")
    assert wire == b"\x01\x02\x0a\x00\x09host:12:ab/rooms/\xc3\xa9\x00payload"
    node, path, opcode, payload = unpack_message(wire)
    assert (node, path, opcode, bytes(payload)) == (b"host:12:ab", "/rooms/é", 2, b"\x00payload")
    for bad in (b"", b"\x02\x01\x00\x00\x00", wire[:12]):
        with pytest.raises(ValueError):
            unpack_message(bad)


def test_url_prefix_and_display():
    from blaze_green.broker.redis import _split_url

    clean, prefix, shown = _split_url("redis://:secret@h:6380/2?prefix=shop&socket_timeout=5")
    assert prefix == "shop" and shown == "redis://h:6380/2"  # no password in the logs
    assert clean == "redis://:secret@h:6380/2?socket_timeout=5"


# -- helpers: many asyncio clients --------------------------------------------------------------


class Client:
    """A /feed client reading in the background: `hello` is the pid its process greeted it with,
    `msgs` every other message in arrival order."""

    def __init__(self, url):
        self.url = url
        self.hello = None
        self.msgs = []

    async def open(self):
        self.ws = await aconnect(self.url, open_timeout=10, max_queue=None)
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "hello" in msg:
                    self.hello = msg["hello"]
                else:
                    self.msgs.append(msg)
        except ConnectionClosed:
            pass

    def tagged(self, tag):
        return [m["seq"] for m in self.msgs if m.get("tag") == tag]

    async def close(self):
        await self.ws.close()
        await self.task


async def open_clients(url, n):
    clients = await asyncio.gather(*(Client(url).open() for _ in range(n)))
    await until(lambda: all(c.hello for c in clients), 10, "greetings")
    return clients


async def until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def post(url, **params):
    r = await asyncio.to_thread(requests.post, url, params=params, timeout=10)
    r.raise_for_status()
    return r.json()


def get(url, **params):
    r = requests.get(url, params=params, timeout=5)
    r.raise_for_status()
    return r.json()


# -- delivery -----------------------------------------------------------------------------------


@pytest.mark.redis
@needs_redis
def test_two_processes_deliver_every_broadcast_exactly_once_in_order(serve, redis_server):
    a, b = cluster(serve, redis_server)
    n = 500

    async def scenario():
        on_a = await open_clients(a.ws_url("/feed"), 50)
        on_b = await open_clients(b.ws_url("/feed"), 50)
        assert {c.hello for c in on_a} == {a.pid} and {c.hello for c in on_b} == {b.pid}
        everyone = on_a + on_b
        for server, tag in ((a, "A"), (b, "B")):
            reply = await post(server.url + "/broadcast", count=n, tag=tag)
            assert reply["reached"] == 50 * n  # local sessions, at once
            await until(lambda t=tag: all(len(c.tagged(t)) >= n for c in everyone), 20, tag)
        # A last marker from each side: anything duplicated or late would show up before it.
        await post(a.url + "/broadcast", count=1, tag="endA")
        await post(b.url + "/broadcast", count=1, tag="endB")
        await until(lambda: all(c.tagged("endA") and c.tagged("endB") for c in everyone), 10, "end")
        for c in everyone:
            assert c.tagged("A") == list(range(n))
            assert c.tagged("B") == list(range(n))
            assert len(c.msgs) == 2 * n + 2
        await asyncio.gather(*(c.close() for c in everyone))

    asyncio.run(scenario())
    stats_a, stats_b = get(a.url + "/stats"), get(b.url + "/stats")
    assert stats_a["published"] == stats_b["published"] == n + 1
    assert stats_a["received"] == stats_b["received"] == n + 1  # each skipped its own
    assert "dropped" not in stats_a and "dropped" not in stats_b


class Drain:
    """`n` raw /feed sessions whose bytes one thread reads and throws away: subscribers that
    cost the test process next to nothing, so the servers' timing is what is measured."""

    def __init__(self, port, n):
        self.socks = [RawWS.connect(port, "/feed").sock for _ in range(n)]
        self.sel = selectors.DefaultSelector()
        for sock in self.socks:
            sock.setblocking(False)
            self.sel.register(sock, selectors.EVENT_READ)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            for key, _ in self.sel.select(0.05):
                with contextlib.suppress(BlockingIOError):
                    key.fileobj.recv(1 << 16)

    def close(self):
        self.running = False
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


@pytest.mark.redis
@needs_redis
def test_other_processes_deliver_while_the_publisher_does(serve, redis_server):
    """A broadcast leaves for Redis before its local delivery: the other process starts
    delivering a long burst while the publishing process is still busy with it."""
    a, b = cluster(serve, redis_server)
    drains = [Drain(a.port, 200), Drain(b.port, 200)]
    try:
        wait_until(lambda: get(a.url + "/count")["cluster"] == 400, 10, what="400 sessions")
        n = 1000
        r = requests.post(a.url + "/broadcast", params={"count": n, "tag": "p"}, timeout=30)
        burst = r.json()
        assert burst["reached"] == 200 * n
        wait_until(lambda: get(b.url + "/remote")["n"] >= n, 30, what="b got the burst")
        remote = get(b.url + "/remote")
        assert remote["n"] == n  # exactly once
        local_s = burst["t1"] - burst["t0"]
        start_s = remote["first"] - burst["t0"]
        end_s = remote["last"] - burst["t0"]
        print(
            f"local burst {local_s * 1000:.1f} ms; the other process started delivering "
            f"{start_s * 1000:.1f} ms after it began, finished {end_s * 1000:.1f} ms"
        )
        # Before: the first PUBLISH left only once the whole local burst was done.
        assert remote["first"] < burst["t1"], (start_s, local_s)
    finally:
        for d in drains:
            d.close()


@pytest.mark.redis
@needs_redis
def test_concurrent_publishers_keep_their_order_in_every_process(serve, redis_server):
    """Three processes broadcast at the same time: every session, wherever it is, gets each
    publisher's messages exactly once and in that publisher's order."""
    servers = cluster(serve, redis_server, n=3)
    n = 300

    async def scenario():
        clients = []
        for server in servers:
            clients += await open_clients(server.ws_url("/feed"), 10)
        await asyncio.gather(
            *(post(s.url + "/broadcast", count=n, tag=f"t{i}") for i, s in enumerate(servers))
        )
        tags = [f"t{i}" for i in range(len(servers))]
        await until(
            lambda: all(len(c.tagged(t)) >= n for c in clients for t in tags), 20, "all bursts"
        )
        for i, s in enumerate(servers):
            await post(s.url + "/broadcast", count=1, tag=f"end{i}")
        await until(lambda: all(c.tagged(f"end{i}") for c in clients for i in range(3)), 10, "ends")
        for c in clients:
            for t in tags:
                assert c.tagged(t) == list(range(n)), t
            assert len(c.msgs) == 3 * n + 3
            # Messages from the three publishers really interleaved somewhere (else this test
            # would only repeat the sequential one).
        interleaved = sum(
            1 for c in clients if [m["tag"] for m in c.msgs[:n]] != [c.msgs[0]["tag"]] * n
        )
        await asyncio.gather(*(c.close() for c in clients))
        return interleaved

    interleaved = asyncio.run(scenario())
    print(f"{interleaved} of 30 clients saw the publishers interleaved")


@pytest.mark.redis
@needs_redis
def test_gunicorn_two_workers_share_broadcasts(serve, redis_server):
    server = serve(
        "cluster_app:app",
        mode="gunicorn",
        workers=2,
        env={"BLAZE_BROKER_URL": redis_server.url},
    )
    subscribed(server, 2)
    assert "only the sessions of the worker that calls it" not in server.output

    async def scenario():
        clients = []
        # The kernel spreads connections over the two workers; open until both answered.
        while len({c.hello for c in clients}) < 2:
            assert len(clients) < 200, "every connection landed on the same worker"
            clients += await open_clients(server.ws_url("/feed"), 4)
        n = 100
        await post(server.url + "/broadcast", count=n, tag="g")
        await post(server.url + "/broadcast", count=1, tag="end")
        await until(lambda: all(c.tagged("end") for c in clients), 15, "every client")
        for c in clients:
            assert c.tagged("g") == list(range(n))
            assert len(c.msgs) == n + 1
        await asyncio.gather(*(c.close() for c in clients))

    asyncio.run(scenario())


# -- interest-based routing ---------------------------------------------------------------------


def channel(path):
    return f"blaze_green:bcast:0:{path}"


@pytest.mark.redis
@needs_redis
def test_processes_subscribe_only_to_paths_with_local_sessions(serve, redis_server):
    """Each process hears the paths it has sessions on and nothing else; the channel is
    dropped when its last local session leaves, and taken again by the next one."""
    a, b, c = cluster(serve, redis_server, n=3)
    n = 50
    with contextlib.ExitStack() as stack:

        def join(server, room):
            ws = stack.enter_context(connect(server.ws_url(f"/rooms/{room}"), open_timeout=5))
            assert json.loads(ws.recv(timeout=5)) == {"hello": server.pid}
            return ws

        on_a, on_b = join(a, "x"), join(b, "x")
        on_c = join(c, "y")
        assert redis_server.numsub(channel("/rooms/x")) == 2  # a and b; confirmed before hello
        assert redis_server.numsub(channel("/rooms/y")) == 1
        for server, room in ((a, "x"), (c, "y"), (b, "y")):  # b publishes on y with nobody there
            r = requests.post(
                server.url + "/broadcast",
                params={"count": n, "tag": room, "path": f"/rooms/{room}"},
                timeout=10,
            )
            r.raise_for_status()
        for ws, want in ((on_a, ["x"] * n), (on_b, ["x"] * n), (on_c, ["y"] * (2 * n))):
            got = [json.loads(ws.recv(timeout=5))["tag"] for _ in want]
            assert got == want
        wait_until(lambda: get(c.url + "/stats").get("published") == n, 5, what="c's replies")
        stats = {s: get(s.url + "/stats") for s in (a, b, c)}
        assert stats[b].get("received", 0) == n  # a's x, not c's y (b has nobody on y)
        assert stats[a].get("received", 0) == 0  # nothing from y reached a's socket
        assert stats[c].get("received", 0) == n  # b's y only; a's x never reached c
        assert all(s.get("ignored", 0) == 0 for s in stats.values())
        assert [stats[s]["subscriptions"] for s in (a, b, c)] == [1, 1, 1]

        on_b.close()  # b's last session on x: b unsubscribes
        wait_until(lambda: redis_server.numsub(channel("/rooms/x")) == 1, 5, what="b leaves x")
        assert get(b.url + "/stats")["subscriptions"] == 0
        again = join(b, "x")  # subscribed again (and confirmed) before on_open said hello
        assert redis_server.numsub(channel("/rooms/x")) == 2
        requests.post(a.url + "/broadcast", params={"tag": "x2", "path": "/rooms/x"}, timeout=5)
        assert json.loads(again.recv(timeout=5))["tag"] == "x2"


@pytest.mark.redis
@needs_redis
def test_a_new_path_hears_what_is_published_once_on_open_returned(serve, redis_server):
    """The race: a session that opens on a path new to its process must get a message that
    another process broadcasts as soon as the session's on_open has run. 40 fresh rooms,
    each published to the moment the greeting (sent by on_open) arrives."""
    a, b = cluster(serve, redis_server)
    with connect(a.ws_url("/feed")) as feed_a:  # a also has a session, on another path
        json.loads(feed_a.recv(timeout=5))
        session = requests.Session()
        for i in range(40):
            with connect(b.ws_url(f"/rooms/new{i}"), open_timeout=5) as ws:
                assert json.loads(ws.recv(timeout=5)) == {"hello": b.pid}  # on_open returned
                r = session.post(
                    a.url + "/broadcast", params={"tag": f"n{i}", "path": f"/rooms/new{i}"}
                )
                assert r.json()["reached"] == 0
                assert json.loads(ws.recv(timeout=5))["tag"] == f"n{i}"
        wait_until(lambda: get(b.url + "/stats")["subscriptions"] == 0, 5, what="all left")


# -- counts -------------------------------------------------------------------------------------


@pytest.mark.redis
@needs_redis
def test_cluster_counts_every_live_process(serve, redis_server):
    a, b, c = cluster(serve, redis_server, n=3)
    with contextlib.ExitStack() as stack:
        for server, k in ((a, 3), (b, 5), (c, 2)):
            for _ in range(k):
                ws = stack.enter_context(connect(server.ws_url("/feed"), open_timeout=5))
                assert json.loads(ws.recv(timeout=5)) == {"hello": server.pid}
        for server in (a, b, c):  # counts are published every second, at most 5 s old
            wait_until(lambda s=server: get(s.url + "/count")["cluster"] == 10, 5, what="10")
        assert get(b.url + "/count")["local"] == 5
        # A graceful stop removes its count at once; a crashed process's count expires (<= 5 s).
        assert c.stop() == 0
        wait_until(lambda: get(a.url + "/count")["cluster"] == 8, 2, what="c's count gone")
        b.proc.kill()
        b.proc.wait(5)
        t0 = time.monotonic()
        wait_until(lambda: get(a.url + "/count")["cluster"] == 3, 7, what="b's count expired")
        assert time.monotonic() - t0 <= 6.0


# -- singleton ----------------------------------------------------------------------------------


def ticks_from(ws, pids, timeout):
    """Read /ticks until a tick from one of `pids` arrives; returns every pid seen meanwhile."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            break
        seen.append(msg["tick"])
        if msg["tick"] in pids:
            return seen
    raise AssertionError(f"no tick from {pids} within {timeout} s (saw {set(seen)})")


@pytest.mark.redis
@needs_redis
def test_singleton_runs_once_and_fails_over(serve, redis_server):
    a, b = cluster(serve, redis_server, SINGLETON="1", TICK="0.1")
    with connect(a.ws_url("/ticks"), open_timeout=5) as wa, connect(b.ws_url("/ticks")) as wb:
        pids = {a.pid, b.pid}
        # Both processes see ticks from one holder only (a broadcast reaches both processes).
        first = ticks_from(wa, pids, 10)
        holder_pid = first[-1]
        for ws in (wa, wb):
            seen = [ticks_from(ws, pids, 5)[-1] for _ in range(10)]
            assert set(seen) == {holder_pid}
        holder, other = (a, b) if holder_pid == a.pid else (b, a)
        assert holder.output.count("ticker running in") == 1
        assert "ticker running in" not in other.output
        survivor_ws = wb if other is b else wa

        holder.proc.send_signal(signal.SIGKILL)
        holder.proc.wait(5)
        killed = time.monotonic()
        ticks_from(survivor_ws, {other.pid}, 20)
        took = time.monotonic() - killed
        assert took < 15, f"takeover took {took:.1f} s"
        other.wait_for_output("ticker running in", 1)
        assert "singleton 'ticker' runs in this process" in other.output


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.redis
@needs_redis
def test_redis_outage_keeps_local_delivery_and_recovers(serve, redis_server):
    a, b = cluster(serve, redis_server)
    with connect(a.ws_url("/feed")) as ca, connect(b.ws_url("/feed")) as cb:
        assert json.loads(ca.recv(timeout=5)) == {"hello": a.pid}
        assert json.loads(cb.recv(timeout=5)) == {"hello": b.pid}

        def send(server, tag, seq):
            t0 = time.monotonic()
            r = requests.post(server.url + "/broadcast", params={"tag": tag, "start": seq})
            assert r.status_code == 200 and time.monotonic() - t0 < 1.0  # never blocks
            return r.json()["reached"]

        def next_tagged(ws, tag, timeout):
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = json.loads(ws.recv(timeout=left))
                except TimeoutError:
                    break
                if msg["tag"] == tag:
                    return msg
                assert msg["tag"] != "down", "a message published during the outage arrived"
            return None

        assert send(a, "before", 0) == 1
        assert next_tagged(cb, "before", 5)["pid"] == a.pid
        assert next_tagged(ca, "before", 5)["pid"] == a.pid

        redis_server.kill()
        # Local delivery goes on, without delay or a log line per message; the outage lasts
        # a few reconnect attempts (backoff 0.1, 0.2, 0.4, 0.8 s...).
        seq = 0
        outage_ends = time.monotonic() + 2.0
        while seq < 30 or time.monotonic() < outage_ends:
            assert send(a, "down", seq) == 1
            assert json.loads(ca.recv(timeout=2)) == {"seq": seq, "tag": "down", "pid": a.pid}
            seq += 1
        for server in (a, b):
            server.wait_for_output("unreachable", 10)
        assert next_tagged(cb, "down", 0.3) is None
        t0 = time.monotonic()
        assert get(a.url + "/count") == {"pid": a.pid, "local": 1, "cluster": 1}
        assert time.monotonic() - t0 < 1.0

        redis_server.start()  # the same port
        seq = 0
        deadline = time.monotonic() + 20
        while next_tagged(cb, "after", 0.2) is None:  # resumes without a restart
            assert time.monotonic() < deadline, "cross-process delivery did not resume"
            send(a, "after", seq)
            seq += 1
        deadline = time.monotonic() + 20
        while next_tagged(ca, "after-b", 0.2) is None:
            assert time.monotonic() < deadline, "delivery from b did not resume"
            send(b, "after-b", seq)

    for server in (a, b):
        server.wait_for_output("reachable again", 10)
        out = server.output
        assert out.count("unreachable") == 1, out  # once per outage, not per message
        assert "broadcasts reach local sessions only" in out


@pytest.mark.redis
@needs_redis
def test_a_hung_redis_never_stalls_broadcast(serve, redis_server):
    """Redis stopped (SIGSTOP: the TCP connection stays up, nothing is read or answered): a
    burst far larger than the socket buffers still returns at once and reaches the local
    session; the publish connection is dropped as an outage once its PUBLISH is unanswered
    for 2 s, and delivery across processes resumes after SIGCONT."""
    a, b = cluster(serve, redis_server)
    with connect(a.ws_url("/feed"), max_size=None) as ca, connect(b.ws_url("/feed")) as cb:
        assert json.loads(ca.recv(timeout=5)) == {"hello": a.pid}
        assert json.loads(cb.recv(timeout=5)) == {"hello": b.pid}
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = requests.post(
                a.url + "/broadcast",
                params={"count": 300, "tag": "hung", "size": 64 * 1024},  # ~19 MiB
                timeout=10,
            )
            took = time.monotonic() - t0
            assert r.json()["reached"] == 300
            assert took < 2.0, f"broadcast took {took:.2f} s with Redis hung"
            for i in range(300):  # the local session gets all of it
                assert json.loads(ca.recv(timeout=10))["seq"] == i
            a.wait_for_output("unreachable", 10)  # the unanswered PUBLISH: an outage
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 20
        seq = 0
        while True:  # resumes by itself; what was published meanwhile may arrive or not
            requests.post(a.url + "/broadcast", params={"tag": "after", "start": seq}, timeout=5)
            try:
                msg = json.loads(cb.recv(timeout=0.3))
            except TimeoutError:
                assert time.monotonic() < deadline, "delivery did not resume after SIGCONT"
                seq += 1
                continue
            if msg["tag"] == "after":
                break


@pytest.mark.redis
@needs_redis
def test_redis_unreachable_at_start(serve):
    redis_server = RedisServer()  # its port, not started yet
    try:
        a, b, c = (
            serve("cluster_app:app", env={"BLAZE_BROKER_URL": redis_server.url}) for _ in range(3)
        )
        for server in (a, b, c):
            server.wait_for_output("unreachable", 10)
        with connect(a.ws_url("/feed")) as ca, connect(b.ws_url("/feed")) as cb:
            assert json.loads(ca.recv(timeout=5)) == {"hello": a.pid}
            assert json.loads(cb.recv(timeout=5)) == {"hello": b.pid}
            r = requests.post(a.url + "/broadcast", params={"tag": "local"}, timeout=2)
            assert r.json()["reached"] == 1
            assert json.loads(ca.recv(timeout=5))["tag"] == "local"
            t0 = time.monotonic()  # stopping does not wait for the broker
            assert c.stop() == 0 and time.monotonic() - t0 < 5

            redis_server.start()
            for server in (a, b):
                subscribed(server)
            seq = 0
            deadline = time.monotonic() + 10
            while True:
                requests.post(a.url + "/broadcast", params={"tag": "up", "start": seq}, timeout=2)
                try:
                    msg = json.loads(cb.recv(timeout=0.2))
                except TimeoutError:
                    assert time.monotonic() < deadline, "cross-process delivery did not start"
                    seq += 1
                    continue
                assert msg["tag"] == "up"  # never the one broadcast while Redis was down
                break
        for server in (a, b):
            assert server.output.count("unreachable") == 1, server.output
    finally:
        redis_server.stop()


# -- the example -------------------------------------------------------------------------------


@pytest.mark.redis
@needs_redis
def test_cluster_example_under_gunicorn_four_workers(serve, redis_server):
    server = serve(
        "app:app",
        mode="gunicorn",
        workers=4,
        cwd=EXAMPLES / "cluster",
        env={"BLAZE_BROKER_URL": redis_server.url},
    )
    subscribed(server, 4)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(server.ws_url("/feed"))) for _ in range(8)]
        for ws in clients:
            tick = json.loads(ws.recv(timeout=5))
            assert tick["type"] == "ticker" and isinstance(tick["value"], float)
        # One ticker in the cluster: one tick a second, not four.
        t0 = time.monotonic()
        for _ in range(3):
            assert json.loads(clients[0].recv(timeout=5))["type"] == "ticker"
        assert time.monotonic() - t0 >= 1.5
        assert server.output.count("singleton 'ticker' runs in this process") == 1
        assert server.output.count("singleton 'heartbeat' runs in this process") == 1
        wait_until(lambda: get(server.url + "/stats")["feed_cluster"] == 8, 5, what="8 clients")


# -- no broker ----------------------------------------------------------------------------------


def test_without_broker_nothing_changes(serve):
    server = serve("cluster_app:app", env={"BLAZE_BROKER_URL": ""})
    assert get(server.url + "/pid")["broker"] is False
    with connect(server.ws_url("/feed")) as w1, connect(server.ws_url("/feed")) as w2:
        for ws in (w1, w2):
            assert json.loads(ws.recv(timeout=5)) == {"hello": server.pid}
        assert get(server.url + "/count") == {"pid": server.pid, "local": 2, "cluster": 2}
        r = requests.post(server.url + "/broadcast", params={"tag": "x"}, timeout=5)
        assert r.json()["reached"] == 2
        assert json.loads(w1.recv(timeout=5))["tag"] == "x"
    assert "broker" not in server.output


def test_gunicorn_workers_without_broker_warn(serve):
    server = serve("cluster_app:app", mode="gunicorn", workers=2, env={"BLAZE_BROKER_URL": ""})
    server.wait_for_output("only the sessions of the worker that calls it", 10)


# -- Redis Cluster (sharded pub/sub) ------------------------------------------------------------

needs_redis_cluster = pytest.mark.skipif(
    (shutil.which("redis-server") is None or shutil.which("redis-cli") is None)
    and not os.environ.get("CI"),
    reason="needs redis-server and redis-cli (apt-get install redis-server redis-tools)",
)


@pytest.fixture
def redis_cluster():
    from redis_server import RedisCluster

    try:
        cluster_ = RedisCluster(masters=3).start()  # 3 masters + 3 replicas on free ports
    except RuntimeError as exc:  # a port taken between choosing and binding: once more
        print(f"starting the Redis Cluster again: {exc}")
        cluster_ = RedisCluster(masters=3).start()
    yield cluster_
    cluster_.stop()


@pytest.mark.redis
@needs_redis_cluster
def test_redis_cluster_sharded_pubsub_delivers_exactly_once_in_order(serve, redis_cluster):
    """redis+cluster://: rooms whose channels live on different masters; every session gets
    every message of its room once, in order; counts across processes work too."""
    env = {"BLAZE_BROKER_URL": redis_cluster.url}
    a, b = (subscribed(serve("cluster_app:app", env=env)) for _ in range(2))
    rooms = [f"/rooms/k{i}" for i in range(6)]
    owners = {redis_cluster.master_of(channel(r)).port for r in rooms}
    assert len(owners) >= 2, "the rooms' channels should spread over several masters"
    n = 50

    async def scenario():
        clients = {}
        for r in rooms:
            clients[r] = await open_clients(a.ws_url(r), 1) + await open_clients(b.ws_url(r), 1)
        for r in rooms:  # both processes SSUBSCRIBEd on the master that owns the channel
            owner = redis_cluster.master_of(channel(r))
            reply = owner.command("PUBSUB", "SHARDNUMSUB", channel(r))
            assert reply.rsplit(b":", 1)[1].strip() == b"2", (r, reply)
        for r in rooms:
            await post(a.url + "/broadcast", count=n, tag=r, path=r)
            await post(b.url + "/broadcast", count=n, tag=r + "b", path=r)
        for r in rooms:
            await until(lambda r=r: all(len(c.msgs) >= 2 * n for c in clients[r]), 20, f"room {r}")
        await asyncio.sleep(0.3)  # a duplicate would arrive by now
        for r in rooms:
            for c in clients[r]:
                assert c.tagged(r) == list(range(n)) and c.tagged(r + "b") == list(range(n))
                assert len(c.msgs) == 2 * n
        await asyncio.gather(*(c.close() for cs in clients.values() for c in cs))

    asyncio.run(scenario())
    with connect(a.ws_url("/feed")), connect(b.ws_url("/feed")):
        wait_until(lambda: get(a.url + "/count")["cluster"] == 2, 5, what="cluster count 2")


@pytest.mark.redis
@needs_redis_cluster
def test_redis_cluster_master_killed_replica_takes_over(serve, redis_cluster):
    """The master that owns /feed's channel is killed: its replica is promoted, delivery
    resumes by itself, and no message is delivered twice."""
    env = {"BLAZE_BROKER_URL": redis_cluster.url}
    a, b = (subscribed(serve("cluster_app:app", env=env)) for _ in range(2))
    with connect(b.ws_url("/feed")) as cb:
        assert json.loads(cb.recv(timeout=5)) == {"hello": b.pid}
        seen = []

        def send_until_received(start, timeout):
            seq = start
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                requests.post(a.url + "/broadcast", params={"tag": "f", "start": seq}, timeout=5)
                seq += 1
                try:
                    while True:
                        seen.append(json.loads(cb.recv(timeout=0.05))["seq"])
                except TimeoutError:
                    pass
                if seen and seen[-1] >= start:
                    return seq
            raise AssertionError(f"nothing from {start} on arrived within {timeout} s")

        seq = send_until_received(0, 10)
        master = redis_cluster.master_of(channel("/feed"))
        master.kill()
        killed_at = seq
        seq = send_until_received(seq, 40)  # the replica takes over (node timeout 1 s)
        assert redis_cluster.master_of(channel("/feed")) is not master
        # Then everything arrives again: 20 more, all of them.
        for i in range(seq, seq + 20):
            requests.post(a.url + "/broadcast", params={"tag": "f", "start": i}, timeout=5)
        deadline = time.monotonic() + 10
        while (not seen or seen[-1] < seq + 19) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                seen.append(json.loads(cb.recv(timeout=0.2))["seq"])
        assert seen == sorted(set(seen)), "a message arrived twice or out of order"
        assert set(range(seq, seq + 20)) <= set(seen)
        print(f"{seq - killed_at} broadcasts during the failover, {len(seen)} received in all")
