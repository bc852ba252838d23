"""The session lifecycle against real servers: shutdown that aborts what cannot finish, the
slow-consumer rule (tail, then 1013), messages before a protocol violation, who closed."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from wsraw import HOST, RawWS, handshake_request

from blaze_green.testing import wait_until
from blaze_green.ws.frames import OP_TEXT, Message, encode_frame

STUCK_CLIENTS = 5


def stuck_client(port: int, path: str) -> socket.socket:
    """A WebSocket client with a tiny receive buffer that never reads after the 101."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((HOST, port))
    request, _ = handshake_request(port, path)
    sock.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "the server closed the connection during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


@pytest.mark.parametrize("mode", ["run", "gunicorn", "script"])
def test_shutdown_drops_sessions_that_cannot_finish_and_still_runs_on_close(serve, mode):
    if mode == "script":
        server = serve("shutdown_app.py", mode="script")
    else:
        server = serve("shutdown_app:app", mode=mode)
    clients = [stuck_client(server.port, "/stuck") for _ in range(STUCK_CLIENTS)]
    try:
        wait_until(
            lambda: server.output.count("shutdown-app flooded") == STUCK_CLIENTS,
            20,
            what="every session to queue its flood",
        )
        started = time.monotonic()
        code = server.stop()
        elapsed = time.monotonic() - started
    finally:
        for sock in clients:
            sock.close()
    assert code == 0, server.output[-3000:]
    closes = [line for line in server.output.splitlines() if "shutdown-app on_close" in line]
    assert len(closes) == STUCK_CLIENTS, server.output[-3000:]
    assert all("code=1001 by=Initiator.SERVER" in line for line in closes), closes
    assert "had not finished closing; dropped their connections" in server.output
    # The promise is "within shutdown_timeout" (2 s); the bound leaves room for a slow machine.
    assert elapsed < 2.0 + 4.0, elapsed


def test_slow_consumer_that_drains_reads_the_tail_then_1013(serve):
    server = serve("ws_app:app", env={"SEND_QUEUE": "8", "CLOSE_TIMEOUT": "30"})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((HOST, server.port))
    request, _ = handshake_request(server.port, "/echo")
    sock.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    with RawWS(sock) as ws:
        ws.send_text("!flood 65536")  # the server sends until the queue overflows
        server.wait_for_output(r"WARNING blaze_green: closing /echo session .*1013")
        wait_until(lambda: count(server) == 0, 5, what="the session to leave connections()")
        # Now drain: every frame parses (the tail of the frame in flight was kept whole),
        # then comes the close frame with 1013.
        close = ws.recv_close(timeout=20)
        assert close.code == 1013
        assert close.reason == "send queue overflow"
        ws.send_close(1013)
        assert ws.wait_eof(timeout=10)
    server.wait_for_output(r"ws-app close sid=1 code=1013 reason=send queue overflow")


def count(server, path: str = "/echo") -> int:
    return requests.get(server.url + "/count", params={"path": path}, timeout=5).json()["count"]


def masked_text(text: str) -> bytes:
    return encode_frame(OP_TEXT, text.encode(), mask=b"\x01\x02\x03\x04")


def test_messages_before_a_violation_in_the_same_read_are_delivered(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        # Two good messages and an unmasked frame (RFC 6455 5.1), all in one write.
        ws.send_raw(masked_text("one") + masked_text("two") + b"\x81\x03bad")
        assert ws.recv_message() == "one"
        assert ws.recv_message() == "two"
        assert ws.recv_close().code == 1002
        assert ws.wait_eof()


def test_close_initiator_is_recorded(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_close(1000)
        assert ws.recv_close().code == 1000
    server.wait_for_output(r"ws-app ended sid=1 by=client")
    with RawWS.connect(server.port) as ws:
        ws.send_text("!close 4000 bye")
        assert ws.recv_close().code == 4000
        ws.send_close(4000)
    server.wait_for_output(r"ws-app ended sid=2 by=server")
    with RawWS.connect(server.port) as ws:
        ws.close()  # TCP only: nobody started a close
    server.wait_for_output(r"ws-app ended sid=3 by=None")


def test_events_after_the_close_frame_are_ignored(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        close = encode_frame(0x8, b"\x03\xe8", mask=b"abcd")
        ws.send_raw(masked_text("before") + close + masked_text("after"))
        assert ws.recv_message() == "before"
        event = ws.recv_event()
        assert not isinstance(event, Message), event
        assert ws.wait_eof()
