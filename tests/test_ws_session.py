"""WebSocket sessions against a real server: callbacks, on_close exactly once however a session
ends, concurrent senders, heartbeats, vanishing peers, slow consumers, hostile clients, logging."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import signal
import socket
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import connect
from wsraw import HOST, RawWS, frame_header, handshake_request

from blaze_green.testing import wait_until
from blaze_green.ws.frames import OP_BINARY, OP_TEXT, Close, Ping


def count(server, path: str = "/echo") -> int:
    return requests.get(server.url + "/count", params={"path": path}, timeout=5).json()["count"]


def lines(server, prefix: str) -> list[str]:
    return [line for line in server.output.splitlines() if line.startswith(prefix)]


def error_lines(server) -> list[str]:
    return [line for line in server.output.splitlines() if " ERROR " in line]


# -- callback exceptions --------------------------------------------------------------------------


def test_exception_in_on_message_closes_1011_logs_traceback_and_server_goes_on(serve):
    server = serve("ws_app:app")
    with connect(server.ws_url("/echo")) as ws:
        ws.send("!raise marker-1234")
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    server.wait_for_output(r"RuntimeError: on_message failed on purpose: marker-1234")
    output = server.output
    assert "Traceback (most recent call last)" in output
    assert re.search(r"ERROR blaze_green: on_message callback for /echo raised", output)
    server.wait_for_output(r"ws-app close sid=1 code=1011")
    # Another session, on the same process, works.
    with connect(server.ws_url("/echo")) as ws:
        ws.send("again")
        assert ws.recv(timeout=5) == "again"
    assert requests.get(server.url + "/count", timeout=5).status_code == 200


# -- on_close exactly once, however the session ends ---------------------------------------------


def end_by_client_close(server):
    with connect(server.ws_url("/echo")) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    return 1000


def end_by_server_close(server):
    with connect(server.ws_url("/echo")) as ws:
        ws.send("!close 4001 done")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    return 4001


def end_by_protocol_error(server):
    with RawWS.connect(server.port) as ws:
        ws.send(OP_TEXT, b"unmasked", masked=False)
        assert ws.recv_close().code == 1002
    return 1002


def end_by_tcp_close(server):
    ws = RawWS.connect(server.port)
    ws.send_text("x")
    assert ws.recv_message() == "x"
    ws.close()
    return 1006


def end_by_tcp_reset(server):
    ws = RawWS.connect(server.port)
    ws.send_text("x")
    assert ws.recv_message() == "x"
    ws.reset()
    return 1006


def end_by_callback_exception(server):
    with RawWS.connect(server.port) as ws:
        ws.send_text("!raise on purpose")
        assert ws.recv_close().code == 1011
        ws.send_close(1011)
        assert ws.wait_eof()
    return 1011


def end_by_on_open_exception(server):
    with RawWS.connect(server.port, "/openboom") as ws:
        assert ws.recv_close().code == 1011
        ws.send_close(1011)
        assert ws.wait_eof()
    return 1011


def end_by_ping_timeout(server):
    with RawWS.connect(server.port) as ws:  # never answers pings
        close, skipped = ws.recv_until((Close,), timeout=5)
        assert any(isinstance(e, Ping) for e in skipped)
        assert close.code == 1011
    return 1011


def end_by_shutdown(server):
    with RawWS.connect(server.port) as ws:
        ws.send_text("x")
        assert ws.recv_message() == "x"
        server.proc.send_signal(signal.SIGTERM)
        assert ws.recv_close().code == 1001
        ws.send_close(1001)
        assert ws.wait_eof()
    assert server.stop() == 0
    return 1001


ENDINGS = {
    "client close": (end_by_client_close, {}),
    "server close": (end_by_server_close, {}),
    "protocol error": (end_by_protocol_error, {}),
    "tcp close": (end_by_tcp_close, {}),
    "tcp reset": (end_by_tcp_reset, {}),
    "callback exception": (end_by_callback_exception, {}),
    "on_open exception": (end_by_on_open_exception, {}),
    "ping timeout": (end_by_ping_timeout, {"PING": "0.3", "PING_TIMEOUT": "0.3"}),
    "shutdown": (end_by_shutdown, {}),
}


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_on_close_runs_exactly_once(serve, ending):
    end, env = ending
    server = serve("ws_app:app", env=env)
    code = end(server)
    server.wait_for_output(rf"ws-app close sid=1 code={code}\b")
    if server.proc.poll() is None:
        for path in ("/echo", "/openboom"):
            wait_until(lambda p=path: count(server, p) == 0, 5, what=f"{path} sessions to end")
        assert server.stop() == 0  # shutdown would close the session again if it still could
    assert len(lines(server, "ws-app open sid=1 ")) == 1
    assert len(lines(server, "ws-app close sid=1 ")) == 1, server.output
    assert len(lines(server, "ws-app close ")) == 1


# -- concurrent senders ---------------------------------------------------------------------------


def by_sender(messages: list[str]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for message in messages:
        tag, _, number = message.partition(":")
        seen.setdefault(tag, []).append(int(number))
    return seen


def test_three_greenlets_sending_at_once_deliver_everything_in_order(serve):
    server = serve("ws_app:app")
    n = 500
    with connect(server.ws_url("/echo")) as ws:
        ws.send(f"!burst {n}")
        received = [ws.recv(timeout=5) for _ in range(3 * n)]
        ws.send("after")
        assert ws.recv(timeout=5) == "after"
    seen = by_sender(received)
    # g: a gevent greenlet, t: an app.spawn task, h: the on_message handler itself.
    assert seen == {tag: list(range(n)) for tag in ("g", "t", "h")}
    # The senders really did interleave (each yields every 10 messages).
    switches = sum(1 for a, b in zip(received, received[1:], strict=False) if a[0] != b[0])
    assert switches > 10, switches
    server.wait_for_output(r"ws-app close sid=1 code=1000")
    assert "ConcurrentObjectUseError" not in server.output
    assert error_lines(server) == []


def test_big_binary_send_racing_small_sends(serve):
    server = serve("ws_app:app")
    n = 100
    big = None
    texts: list[str] = []
    with connect(server.ws_url("/echo"), max_size=None) as ws:
        ws.send(f"!bigrace {n}")
        for _ in range(3 * n + 2):
            message = ws.recv(timeout=10)
            if isinstance(message, bytes):
                assert big is None
                big = message
                texts.append("BIG:0")
            else:
                texts.append(message)
        ws.send("after")
        assert ws.recv(timeout=5) == "after"
    assert big is not None and len(big) == 4 << 20
    expected = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(131072))
    assert big == expected
    sha = [t for t in texts if t.startswith("sha:")]
    assert sha == [f"sha:{hashlib.sha256(expected).hexdigest()}"]
    # The handler's own order: h:0..49, sha, the big message, h2:0..49.
    handler = [t for t in texts if t.split(":")[0] in ("h", "h2", "sha", "BIG")]
    assert handler == (
        [f"h:{i}" for i in range(n // 2)] + sha + ["BIG:0"] + [f"h2:{i}" for i in range(n // 2)]
    )
    others = by_sender([t for t in texts if t[0] in "gt"])
    assert others == {"g": list(range(n)), "t": list(range(n))}
    assert "ConcurrentObjectUseError" not in server.output
    assert error_lines(server) == []


# -- heartbeats -----------------------------------------------------------------------------------

FAST_PINGS = {"PING": "0.3", "PING_TIMEOUT": "0.3"}


def test_websockets_client_answering_pings_stays_connected(serve):
    server = serve("ws_app:app", env=FAST_PINGS)
    with connect(server.ws_url("/echo")) as ws:
        # 2.2 s is the point of the test: about seven ping rounds, each answered in time.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=2.2)
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"
    server.wait_for_output(r"ws-app close sid=1 code=1000")
    assert lines(server, "ws-app close ") == ["ws-app close sid=1 code=1000 reason="]
    assert "no pong" not in server.output


def test_raw_client_answering_pings_by_hand_stays_connected(serve):
    server = serve("ws_app:app", env=FAST_PINGS)
    with RawWS.connect(server.port) as ws:
        deadline = time.monotonic() + 1.5
        pings = []
        while time.monotonic() < deadline:
            try:
                event = ws.recv_event(timeout=deadline - time.monotonic())
            except TimeoutError:
                break
            assert isinstance(event, Ping), event
            pings.append(event.payload)
            ws.pong(event.payload)
        assert len(pings) >= 3, pings
        assert len(set(pings)) == len(pings)  # each ping carries its own payload
        ws.send_text("alive")
        assert ws.recv_message() == "alive"


def test_client_that_never_answers_pings_is_closed_with_1011(serve):
    server = serve("ws_app:app", env=FAST_PINGS)
    with RawWS.connect(server.port) as ws:
        started = time.monotonic()
        close, skipped = ws.recv_until((Close,), timeout=3)
        assert (close.code, close.reason) == (1011, "keepalive ping timeout")
        assert [type(e) for e in skipped] == [Ping]  # one ping, never answered
        assert time.monotonic() - started < 2.0
        # Dropped without waiting for our close frame (close_timeout is 5 s).
        assert ws.wait_eof(timeout=3)
    server.wait_for_output(r"ws-app close sid=1 code=1011")
    server.wait_for_output(r"no pong from 127\.0\.0\.1")


def test_wrong_pong_payload_does_not_count(serve):
    server = serve("ws_app:app", env=FAST_PINGS)
    with RawWS.connect(server.port) as ws:
        ping = ws.recv_event(timeout=3)
        assert isinstance(ping, Ping)
        ws.pong(b"not the payload")
        assert ws.recv_close(timeout=3).code == 1011


def test_no_pings_when_ping_interval_is_none(serve):
    server = serve("ws_app:app")  # ws_app's default: ping_interval None
    with RawWS.connect(server.port) as ws:
        with pytest.raises(TimeoutError):
            ws.recv_event(timeout=1.0)
        ws.send_text("quiet")
        assert ws.recv_message() == "quiet"


# -- peers that vanish ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_vanished_peer_ends_with_1006_and_leaves_connections(serve, how):
    server = serve("ws_app:app")
    ws = RawWS.connect(server.port)
    ws.send_text("hi")
    assert ws.recv_message() == "hi"
    assert count(server) == 1
    ws.close() if how == "close" else ws.reset()
    wait_until(lambda: count(server) == 0, 5, what="the session to leave connections()")
    server.wait_for_output(r"ws-app close sid=1 code=1006")


def test_vanished_peer_mid_frame_ends_with_1006(serve):
    server = serve("ws_app:app")
    ws = RawWS.connect(server.port)
    ws.send_raw(frame_header(OP_BINARY, 1000, mask=b"abcd") + b"only part")
    wait_until(lambda: count(server) == 1, 5)
    ws.reset()
    wait_until(lambda: count(server) == 0, 5, what="the session to leave connections()")
    server.wait_for_output(r"ws-app close sid=1 code=1006")


# -- slow consumers -------------------------------------------------------------------------------


def test_slow_consumer_is_closed_with_1013_and_leaves_connections(serve):
    server = serve("ws_app:app", env={"SEND_QUEUE": "8"})
    with RawWS.connect(server.port) as ws:
        ws.send_text("!flood 65536")  # the server sends until the session closes; we never read
        server.wait_for_output(r"ws-app close sid=1 code=1013 reason=send queue overflow")
        assert count(server) == 0
        server.wait_for_output(r"WARNING blaze_green: closing /echo session .*send_queue_size")
        assert ws.wait_eof(timeout=10)  # the connection was dropped (after whatever it sent)
    with connect(server.ws_url("/echo")) as other:
        other.send("fine")
        assert other.recv(timeout=5) == "fine"


# -- hostile clients ------------------------------------------------------------------------------


def misbehave(sock: socket.socket, port: int, kind: int) -> None:
    request, _ = handshake_request(port)
    if kind == 0:  # garbage
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)))
    elif kind == 1:  # half a handshake, then nothing
        sock.sendall(request[: len(request) // 2])
    elif kind == 2:  # a handshake, then an unmasked frame
        sock.sendall(request)
        sock.sendall(b"\x81\x05hello")
    elif kind == 3:  # oversized headers
        sock.sendall(request[:-2] + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n")
    elif kind == 4:  # a handshake, then half a frame, then nothing
        sock.sendall(request)
        sock.sendall(frame_header(OP_TEXT, 100, mask=b"abcd") + b"partial")


def test_server_survives_a_burst_of_bad_clients(serve):
    server = serve("ws_app:app")
    bad = []
    try:
        for i in range(50):
            bad.append(socket.create_connection((HOST, server.port), timeout=5))
            # The server may drop an oversized request before we finish sending it.
            with contextlib.suppress(OSError):
                misbehave(bad[-1], server.port, i % 5)
        # With the bad connections still open, good clients complete handshakes and echo.
        for i in range(5):
            with connect(server.ws_url("/echo")) as ws:
                ws.send(f"good {i}")
                assert ws.recv(timeout=5) == f"good {i}"
        with RawWS.connect(server.port) as ws:
            ws.send_binary(b"\x00\x01")
            assert ws.recv_message() == b"\x00\x01"
    finally:
        for sock in bad:
            sock.close()
    with connect(server.ws_url("/echo")) as ws:
        ws.send("after")
        assert ws.recv(timeout=5) == "after"
    assert server.proc.poll() is None
    # The unmasked-frame clients were closed with 1002; the vanished ones end with 1006.
    server.wait_for_output(r"ws-app close sid=\d+ code=1002")
    wait_until(lambda: count(server) == 0, 5, what="every bad session to end")
    assert "Traceback" not in server.output


# -- logging --------------------------------------------------------------------------------------


def test_normal_closes_are_not_errors_but_1011_is(serve):
    server = serve("ws_app:app")
    with connect(server.ws_url("/echo")) as ws:
        ws.send("a")
        ws.recv(timeout=5)
    with connect(server.ws_url("/echo")) as ws:
        ws.close(1001, "going away")
    with RawWS.connect(server.port) as ws:
        ws.send_close(None)
        ws.recv_close()
        assert ws.wait_eof()
    for code in (1000, 1001, 1005):
        server.wait_for_output(rf"ws-app close sid=\d+ code={code}\b")
    assert error_lines(server) == []
    with RawWS.connect(server.port) as ws:
        ws.send_text("!raise logged")
        assert ws.recv_close().code == 1011
    server.wait_for_output(r"ws-app close sid=\d+ code=1011")
    errors = error_lines(server)
    assert errors and "on_message" in errors[0]
    assert "RuntimeError: on_message failed on purpose: logged" in server.output


# -- sessions see their request -------------------------------------------------------------------


def test_session_attributes(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port, "/echo?x=1") as ws:
        ws.send_text("!whoami")
        info = json.loads(ws.recv_message())
        assert info == {
            "sid": 1,
            "path": "/echo",
            "subprotocol": None,
            "remote_addr": "127.0.0.1",
            "closed": False,
            "query": "x=1",
        }
        assert count(server) == 1
