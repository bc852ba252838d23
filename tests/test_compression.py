"""permessage-deflate (RFC 7692) against a real server, with clients that are not ours: the
websockets library (its default compression), raw sockets for every negotiation parameter and
the inflate limits; Node's `ws` is in test_compression_node.py, Chromium in test_examples.py."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import zlib

import pytest
import requests
from websockets.asyncio.client import connect as aconnect
from websockets.sync.client import connect
from wsraw import HOST, RawWS, handshake_request

from blaze_green.testing import wait_until
from blaze_green.ws.frames import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, FrameParser

MASK = b"\x11\x22\x33\x44"
BOTH = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def deflate(payload: bytes) -> bytes:
    """A client's compressed message body (no context, sync-flush tail removed)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def inflate(data: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")


def raw_connect(port: int, path: str, extensions: str | None) -> RawWS:
    """A raw client; if the server accepted permessage-deflate, it inflates what it reads."""
    headers = {"Sec-WebSocket-Extensions": extensions} if extensions else None
    ws = RawWS.connect(port, path, headers=headers)
    if "sec-websocket-extensions" in ws.headers:
        assert not ws.pending
        ws.parser = FrameParser(max_message_size=None, expect_masked=False, deflate=True)
    return ws


# -- negotiation, byte by byte -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("permessage-deflate", BOTH),
        ("permessage-deflate; client_max_window_bits", BOTH),
        ("permessage-deflate; server_max_window_bits=10", BOTH + "; server_max_window_bits=10"),
        (
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8, "
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9",
            BOTH + "; server_max_window_bits=12",
        ),
        ("permessage-deflate; unknown=1", None),
        ("x-webkit-deflate-frame", None),
        (None, None),
    ],
)
def test_negotiation_answers(serve, offer, answer):
    server = serve("deflate_app:app")
    with raw_connect(server.port, "/echo", offer) as ws:
        assert ws.headers.get("sec-websocket-extensions") == answer


def test_offers_in_several_header_lines_are_one_list(serve):
    server = serve("deflate_app:app")
    request, _ = handshake_request(server.port, "/echo")
    request = request.replace(
        b"\r\n\r\n",
        b"\r\nSec-WebSocket-Extensions: x-unknown\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=11\r\n\r\n",
    )
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
    assert b"101 Switching Protocols" in head
    assert BOTH.encode() + b"; server_max_window_bits=11" in head


@pytest.mark.parametrize(
    "offer", ['permessage-deflate; a="unterminated', "permessage-deflate;; x", "per message"]
)
def test_a_malformed_extensions_header_is_400(serve, offer):
    server = serve("deflate_app:app")
    with pytest.raises(Exception) as refused:
        raw_connect(server.port, "/echo", offer)
    assert refused.value.status == 400
    assert b"Sec-WebSocket-Extensions" in refused.value.body


def test_compression_off_negotiates_nothing(serve):
    server = serve("deflate_app:app", env={"COMPRESSION": "off"})
    with raw_connect(server.port, "/echo", "permessage-deflate") as ws:
        assert "sec-websocket-extensions" not in ws.headers
        ws.send(OP_TEXT, deflate(b"x" * 300), rsv=0b100)  # RSV1 without the extension
        assert ws.recv_close().code == 1002


# -- frames on the wire ---------------------------------------------------------------------------


def test_small_messages_go_plain_large_ones_compressed(serve):
    server = serve("deflate_app:app")
    with raw_connect(server.port, "/echo", "permessage-deflate") as ws:
        ws.parser = None  # this test reads the bytes itself
        ws.send(OP_TEXT, b"heartbeat")  # a plain message from a compressing client is fine
        ws.sock.settimeout(5)
        head = ws.sock.recv(2)
        assert head[0] == 0x81  # RSV1 clear: under the threshold
        assert ws.sock.recv(head[1]) == b"heartbeat"
        payload = json.dumps([{"symbol": "BTC", "price": 89500.5, "n": i} for i in range(20)])
        ws.send(OP_TEXT, deflate(payload.encode()), rsv=0b100)
        head = ws.sock.recv(4)
        assert head[0] == 0xC1  # FIN + RSV1 + text
        length = head[1] if head[1] < 126 else int.from_bytes(head[2:4], "big")
        body = head[4:] if head[1] >= 126 else head[2:]
        while len(body) < length:
            body += ws.sock.recv(length - len(body))
        assert inflate(body).decode() == payload
        assert length < len(payload) / 2


def test_fragmented_compressed_message_and_control_frames_in_between(serve):
    server = serve("deflate_app:app")
    payload = ("fragmented " * 500).encode()
    data = deflate(payload)
    third = len(data) // 3
    with raw_connect(server.port, "/echo", "permessage-deflate") as ws:
        ws.send(OP_TEXT, data[:third], fin=False, rsv=0b100)  # RSV1 on the first frame only
        ws.send(OP_PING, b"p")
        ws.send(OP_CONT, data[third : 2 * third], fin=False)
        ws.send(OP_CONT, data[2 * third :], fin=True)
        assert ws.recv_message() == payload.decode()


def test_rsv1_on_a_continuation_or_control_frame_is_1002(serve):
    server = serve("deflate_app:app")
    with raw_connect(server.port, "/echo", "permessage-deflate") as ws:
        ws.send(OP_TEXT, b"a", fin=False)
        ws.send(OP_CONT, b"b", fin=True, rsv=0b100)
        assert ws.recv_close().code == 1002
    with raw_connect(server.port, "/echo", "permessage-deflate") as ws:
        ws.send(OP_PING, b"", rsv=0b100)
        assert ws.recv_close().code == 1002
    with raw_connect(server.port, "/echo", "permessage-deflate") as ws:
        ws.send(OP_TEXT, b"x", rsv=0b010)  # RSV2 means nothing here
        assert ws.recv_close().code == 1002


def test_corrupt_deflate_data_is_1007_and_others_are_served(serve):
    server = serve("deflate_app:app")
    with connect(server.ws_url("/echo")) as good:
        with raw_connect(server.port, "/echo", "permessage-deflate") as ws:
            ws.send(OP_TEXT, b"\xff\xfe\xfd\xfc" * 8, rsv=0b100)
            close = ws.recv_close()
            assert close.code == 1007
            assert "permessage-deflate" in close.reason
        good.send("still served")
        assert good.recv(timeout=5) == "still served"


def rss_kb(server) -> int:
    return requests.get(server.url + "/rss", timeout=5).json()["kb"]


def test_a_compression_bomb_closes_1009_with_memory_bounded(serve):
    server = serve("deflate_app:app", env={"MAX_MSG": str(1 << 20)})
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(b"\0" * (1 << 30)) + bomb.flush(zlib.Z_SYNC_FLUSH)  # 1 GiB of zeros
    data = data[:-4]
    assert len(data) < 1_100_000  # about 1 MiB on the wire, under the limit
    small = zlib.compressobj(9, zlib.DEFLATED, -15)
    tiny = small.compress(b"\0" * (64 << 20)) + small.flush(zlib.Z_SYNC_FLUSH)  # 64 MiB
    before = rss_kb(server)
    with connect(server.ws_url("/echo")) as good:
        for body in (data, tiny[:-4]):
            with raw_connect(server.port, "/echo", "permessage-deflate") as ws:
                ws.send(OP_BINARY, body, rsv=0b100)
                close = ws.recv_close(timeout=10)
                assert close.code == 1009
                assert "inflates to more than 1048576" in close.reason
        good.send("after the bombs")
        assert good.recv(timeout=5) == "after the bombs"
    assert rss_kb(server) - before < 40_000  # it inflated about 1 MiB, not 1 GiB


# -- the websockets client, with its default compression ----------------------------------------


SIZES = [1, 100, 127, 128, 1000, 65535, 65536, 1 << 20, 4 << 20]


def test_websockets_client_echo_text_and_binary_every_size(serve):
    server = serve("deflate_app:app")
    with connect(server.ws_url("/echo"), max_size=16 << 20) as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        for size in SIZES:
            text = ("blaze ✓ " * (size // 8 + 1))[:size]
            ws.send(text)
            assert ws.recv(timeout=20) == text
            binary = os.urandom(size // 2) + b"\0" * (size - size // 2)
            ws.send(binary)
            assert ws.recv(timeout=20) == binary


def test_websockets_client_fragmented_messages(serve):
    server = serve("deflate_app:app")
    with connect(server.ws_url("/echo")) as ws:
        parts = ["first part " * 50, "second ✓ " * 70, "third" * 90]
        ws.send(parts)  # one message in three frames, compressed as one
        assert ws.recv(timeout=5) == "".join(parts)
        blobs = [b"\x01" * 5000, os.urandom(3000), b"\x02" * 7000]
        ws.send(blobs)
        assert ws.recv(timeout=5) == b"".join(blobs)


def test_broadcast_to_compressed_and_plain_clients_at_once(serve):
    server = serve("deflate_app:app")
    count = 30

    async def client(compressed: bool):
        return await aconnect(server.ws_url("/feed"), compression="deflate" if compressed else None)

    async def receive(ws):
        return [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(count)]

    async def run():
        clients = await asyncio.gather(*(client(i % 2 == 0) for i in range(400)))
        try:
            negotiated = [
                bool(ws.response.headers.get("Sec-WebSocket-Extensions")) for ws in clients
            ]
            assert negotiated.count(True) == 200
            await asyncio.to_thread(
                wait_until,
                lambda: requests.get(server.url + "/count", timeout=5).json()["n"] == 400,
                20,
            )
            r = await asyncio.to_thread(
                requests.post, server.url + "/broadcast", params={"count": count}, timeout=30
            )
            assert r.json()["reached"] == [400] * count
            results = await asyncio.gather(*(receive(ws) for ws in clients))
            for messages in results:
                assert [m["seq"] for m in messages] == list(range(count))
                assert messages[0]["ticks"][3] == {"symbol": "S3", "price": 103.0, "volume": 3000}
        finally:
            await asyncio.gather(*(ws.close() for ws in clients))

    asyncio.run(run())
