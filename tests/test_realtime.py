"""Registry, broadcast, tasks and shutdown against real servers with real clients."""

import asyncio
import json
import re
import signal
import socket
import struct
from pathlib import Path

import pytest
import requests
from websockets.asyncio.client import connect

from blaze_green.testing import ServerProcess, wait_until

APPS = Path(__file__).parent / "apps"


def count(server, path="/feed"):
    return requests.get(server.url + "/count", params={"path": path}, timeout=5).json()["n"]


async def open_clients(server, n, path="/feed"):
    clients = []
    for i in range(0, n, 100):  # in batches, to stay under the listen backlog
        batch = [
            connect(server.ws_url(path), ping_interval=None, max_queue=None)
            for _ in range(min(100, n - i))
        ]
        clients += await asyncio.gather(*batch)
    return clients


async def receive_n(ws, n, timeout=30):
    out = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(json.loads(await ws.recv()))
    return out


async def close_all(clients):
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def test_broadcast_500_clients_exact_counts_and_order(serve):
    server = serve("rt_app:app")

    async def run():
        clients = await open_clients(server, 500)
        wait_until(lambda: count(server) == 500, 20, what="500 registered sessions")
        r = await asyncio.to_thread(
            requests.post, server.url + "/broadcast", params={"count": 20}, timeout=30
        )
        assert r.json()["reached"] == [500] * 20
        got = await asyncio.gather(*(receive_n(c, 20) for c in clients))
        for messages in got:
            assert [m["seq"] for m in messages] == list(range(20))
        await close_all(clients)

    asyncio.run(run())
    wait_until(lambda: count(server) == 0, 20, what="all sessions gone")


def test_burst_is_coalesced_into_few_writes(serve):
    """200 broadcasts in a row to 1,000 clients: 200,000 deliveries. With a coalescing window
    longer than the burst, one send per client (plus a few for partial writes). (With the
    default 2 ms window the burst is written in rounds, a number that depends on the machine's
    speed: measured by `python -m bench --scenarios fanout`, not asserted here.)"""
    server = serve("rt_app:app", env={"COALESCE": "5.0"})

    async def run():
        clients = await open_clients(server, 1000)
        wait_until(lambda: count(server) == 1000, 30, what="1000 registered sessions")
        before = requests.get(server.url + "/sends", timeout=5).json()["sends"]
        r = await asyncio.to_thread(
            requests.post,
            server.url + "/broadcast",
            params={"count": 200, "size": 60},
            timeout=30,
        )
        assert r.json()["reached"] == [1000] * 200
        got = await asyncio.gather(*(receive_n(c, 200) for c in clients))
        assert all([m["seq"] for m in messages] == list(range(200)) for messages in got)
        sends = requests.get(server.url + "/sends", timeout=5).json()["sends"] - before
        assert 1000 <= sends <= 3000, sends
        await close_all(clients)

    asyncio.run(run())


def test_exclude_skips_the_sender(serve):
    server = serve("rt_app:app")

    async def run():
        a, b, c = await open_clients(server, 3)
        wait_until(lambda: count(server) == 3, 10)
        await a.send("shout hello")
        assert json.loads(await a.recv()) == {"shouted": 2}
        await a.send("ping")
        assert await a.recv() == "pong"  # a got no copy of its own shout
        for other in (b, c):
            assert json.loads(await other.recv()) == {"shout": "hello"}
        await close_all([a, b, c])

    asyncio.run(run())


def test_connections_are_per_path(serve):
    server = serve("rt_app:app")

    async def run():
        feed = await open_clients(server, 3)
        other = await open_clients(server, 2, "/other")
        wait_until(lambda: count(server) == 3 and count(server, "/other") == 2, 10)
        r = requests.post(server.url + "/broadcast", params={"count": 1}, timeout=5)
        assert r.json()["reached"] == [3]
        await close_all(feed + other)

    asyncio.run(run())


def raw_handshake(port, path="/feed", rcvbuf=None):
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_abrupt_disconnects_are_pruned(serve):
    server = serve("rt_app:app")
    socks = [raw_handshake(server.port) for _ in range(50)]
    wait_until(lambda: count(server) == 50, 10)
    for s in socks:  # RST without a close frame
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    wait_until(lambda: count(server) == 0, 10, what="pruned sessions")
    wait_until(
        lambda: requests.get(server.url + "/closed", timeout=5).json()["codes"] == [1006] * 50,
        10,
        what="on_close for every dropped session",
    )
    r = requests.post(server.url + "/broadcast", params={"count": 1}, timeout=5)
    assert r.json()["reached"] == [0]


def test_broadcast_from_task_handler_and_os_thread_at_once(serve):
    server = serve("rt_app:app")

    async def run():
        clients = await open_clients(server, 20)
        wait_until(lambda: count(server) == 20, 10)
        r = await asyncio.to_thread(
            requests.post, server.url + "/mixed", params={"count": 200}, timeout=30
        )
        reached = r.json()
        for src in ("task", "thread", "handler"):
            assert reached[src] == [20] * 200, src
        got = await asyncio.gather(*(receive_n(c, 600) for c in clients))
        for messages in got:
            for src in ("task", "thread", "handler"):
                assert [m["seq"] for m in messages if m["src"] == src] == list(range(200))
        await close_all(clients)

    asyncio.run(run())


def test_slow_consumer_is_closed_1013_while_fast_clients_get_everything(serve):
    server = serve("rt_app:app", env={"QUEUE": "256"})
    slow = raw_handshake(server.port, rcvbuf=4096)  # never reads

    async def run():
        fast = await open_clients(server, 2)
        wait_until(lambda: count(server) == 3, 10)
        rss_before = requests.get(server.url + "/rss", timeout=5).json()["kib"]
        receivers = [asyncio.create_task(receive_n(c, 2000)) for c in fast]
        r = await asyncio.to_thread(
            requests.post,
            server.url + "/flood",
            params={"count": 2000, "size": 4000, "every": 20, "pause": 0.005},
            timeout=60,
        )
        assert r.json() == {"done": 2000}
        for messages in await asyncio.gather(*receivers):
            assert [m["seq"] for m in messages] == list(range(2000))
        # the slow one left the registry as soon as its buffer overflowed
        assert count(server) == 2
        rss_after = requests.get(server.url + "/rss", timeout=5).json()["kib"]
        # ~8 MB went to each client: the slow one's backlog was freed, not kept
        assert rss_after - rss_before < 20_000, (rss_before, rss_after)
        await close_all(fast)

    asyncio.run(run())
    server.wait_for_output(
        r"closing /feed session from 127\.0\.0\.1: \d+ messages \(\d+ bytes\) not yet written"
    )
    # The slow client sees some messages, then either our 1013 close frame or a dropped TCP.
    slow.settimeout(10)
    data = b""
    while True:
        try:
            chunk = slow.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    slow.close()
    close_frame = b"\x88" + bytes([2 + len(b"send queue overflow")]) + struct.pack("!H", 1013)
    assert close_frame in data or len(data) < 2000 * 4000
    wait_until(lambda: 1013 in requests.get(server.url + "/closed", timeout=5).json()["codes"], 10)


def test_task_exception_is_logged_with_traceback(serve):
    server = serve("rt_app:app")
    server.wait_for_output(r"background task failing_task raised[\s\S]*ValueError: task failure")
    assert requests.get(server.url + "/count", timeout=5).status_code == 200


@pytest.mark.parametrize("mode", ["run", "script", "gunicorn"])
def test_tasks_start_with_the_server_in_every_mode(tmp_path, mode):
    kwargs = {"cwd": APPS}
    if mode == "script":
        script = tmp_path / "rt_script.py"
        script.write_text("from rt_app import app\napp.listen(port=0)\n")
        kwargs["cwd"] = tmp_path
        kwargs["env"] = {"PYTHONPATH": str(APPS)}
        server = ServerProcess(str(script), mode="script", **kwargs)
    elif mode == "gunicorn":
        server = ServerProcess("rt_app:app", mode="gunicorn", workers=2, **kwargs)
    else:
        server = ServerProcess("rt_app:app", **kwargs)
    with server:
        expected = 2 if mode == "gunicorn" else 1
        wait_until(
            lambda: (
                len(re.findall(r"startup task running in pid (\d+)", server.output)) >= expected
            ),
            15,
            what="startup tasks",
        )
        pids = {int(p) for p in re.findall(r"startup task running in pid (\d+)", server.output)}
        assert len(pids) == expected
        assert server.pid not in pids or mode != "gunicorn"  # never in the gunicorn master
        assert server.stop() == 0


@pytest.mark.parametrize("mode", ["run", "script", "gunicorn"])
def test_shutdown_closes_sessions_with_1001_and_exits_0(tmp_path, mode):
    env = {"SHUTDOWN_TIMEOUT": "5"}
    if mode == "script":
        script = tmp_path / "rt_script.py"
        script.write_text("from rt_app import app\napp.listen(port=0)\n")
        env["PYTHONPATH"] = str(APPS)
        server = ServerProcess(str(script), mode="script", cwd=tmp_path, env=env)
    elif mode == "gunicorn":
        # graceful-timeout 20 s (ServerProcess): the worker must not wait it out
        server = ServerProcess("rt_app:app", mode="gunicorn", workers=1, cwd=APPS, env=env)
    else:
        server = ServerProcess("rt_app:app", cwd=APPS, env=env)
    with server:

        async def run():
            clients = await open_clients(server, 10)
            wait_until(lambda: count(server) == 10, 10)
            stopper = asyncio.create_task(asyncio.to_thread(server.stop, signal.SIGTERM, 8))
            for c in clients:
                async with asyncio.timeout(8):
                    await c.wait_closed()
                assert c.close_code == 1001
                assert c.close_reason == "server shutting down"
            return await stopper

        assert asyncio.run(run()) == 0
    assert len(re.findall(r"on_close ran with 1001", server.output)) == 10
