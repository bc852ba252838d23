"""RFC 6455 framing against a real server, with hand-built frames (tests/wsraw.py): each protocol
violation gets the right close code in the server's close frame, then TCP is closed."""

from __future__ import annotations

import os
import time

import pytest
import websocket
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from wsraw import RawWS, frame_header

from blaze_green.ws.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    Close,
    Message,
    Ping,
    Pong,
    close_payload,
    encode_frame,
)


def expect_close(ws: RawWS, code: int, timeout: float = 5.0) -> Close:
    """The server's close frame has `code`, no message came before it, and TCP closes at once
    (well before close_timeout, 5 s: the server does not wait for our answer)."""
    event, skipped = ws.recv_until((Close,), timeout)
    assert not [e for e in skipped if isinstance(e, Message)], skipped
    assert event.code == code, f"expected close code {code}, got {event}"
    assert ws.wait_eof(2.0), "the server did not close TCP after its close frame"
    return event


def _masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return encode_frame(opcode, payload, fin=fin, mask=os.urandom(4))


# -- protocol errors: 1002 ------------------------------------------------------------------------

PROTOCOL_ERRORS = {
    "unmasked frame": [dict(opcode=OP_TEXT, payload=b"hi", masked=False)],
    "rsv1": [dict(opcode=OP_TEXT, payload=b"hi", rsv=0b100)],
    "rsv3": [dict(opcode=OP_BINARY, payload=b"hi", rsv=0b001)],
    "fragmented ping": [dict(opcode=OP_PING, payload=b"p", fin=False)],
    "ping over 125 bytes": [dict(opcode=OP_PING, payload=b"p" * 126)],
    "continuation without start": [dict(opcode=OP_CONT, payload=b"x")],
    "new text inside a fragmented message": [
        dict(opcode=OP_TEXT, payload=b"part", fin=False),
        dict(opcode=OP_TEXT, payload=b"other"),
    ],
    "opcode 3": [dict(opcode=3, payload=b"x")],
    "opcode 0xB": [dict(opcode=0xB, payload=b"")],
    "close with 1-byte payload": [dict(opcode=OP_CLOSE, payload=b"\x03")],
}


@pytest.mark.parametrize("frames", PROTOCOL_ERRORS.values(), ids=PROTOCOL_ERRORS.keys())
def test_protocol_violation_closes_with_1002(serve, frames):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_text("before")
        assert ws.recv_message() == "before"
        for frame in frames:
            ws.send(**frame)
        expect_close(ws, 1002)
    server.wait_for_output(r"ws-app close sid=1 code=1002")


def test_messages_before_a_violation_in_the_same_write_are_delivered(serve):
    # Autobahn 3.2, 4.1.3, 4.2.3, 5.15: one TCP write carries valid messages, a ping, then a
    # bad frame. Everything before the bad frame is handled (echoed, answered), then 1002.
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        bad = encode_frame(OP_TEXT, b"x", mask=os.urandom(4), rsv=0b010)
        ws.send_raw(
            _masked(OP_TEXT, b"one") + _masked(OP_PING, b"p") + _masked(OP_BINARY, b"2") + bad
        )
        assert [ws.recv_event() for _ in range(3)] == [Message("one"), Pong(b"p"), Message(b"2")]
        event, skipped = ws.recv_until((Close,), 5.0)
        assert event.code == 1002 and skipped == []
        assert ws.wait_eof(2.0)
    server.wait_for_output(r"ws-app close sid=1 code=1002")


# -- UTF-8: 1007 ----------------------------------------------------------------------------------

UTF8_ERRORS = {
    "invalid text": [dict(opcode=OP_TEXT, payload=b"ok \xff")],
    "surrogate": [dict(opcode=OP_TEXT, payload=b"\xed\xa0\x80")],
    # The first fragment is valid UTF-8 on its own; the second is not.
    "second fragment invalid": [
        dict(opcode=OP_TEXT, payload=b"hello ", fin=False),
        dict(opcode=OP_CONT, payload=b"\xffworld"),
    ],
    # Invalid bytes in a fragment that is not the last: detected there, before the message ends.
    "invalid in a middle fragment": [
        dict(opcode=OP_TEXT, payload=b"fine", fin=False),
        dict(opcode=OP_CONT, payload=b"\xc0\xaf", fin=False),
    ],
    # The first fragment ends with the lead byte of a code point the second does not continue.
    "code point split across fragments": [
        dict(opcode=OP_TEXT, payload=b"caf\xc3", fin=False),
        dict(opcode=OP_CONT, payload=b"A"),
    ],
    "truncated at the end": [
        dict(opcode=OP_TEXT, payload=b"caf", fin=False),
        dict(opcode=OP_CONT, payload=b"\xc3"),
    ],
    "close reason": [dict(opcode=OP_CLOSE, payload=b"\x03\xe8bad \xff")],
}


@pytest.mark.parametrize("frames", UTF8_ERRORS.values(), ids=UTF8_ERRORS.keys())
def test_invalid_utf8_closes_with_1007(serve, frames):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        for frame in frames:
            ws.send(**frame)
        expect_close(ws, 1007)
    server.wait_for_output(r"ws-app close sid=1 code=1007")


def test_valid_utf8_split_across_fragments_is_one_message(serve):
    server = serve("ws_app:app")
    text = "café ☃ 😀"
    data = text.encode()
    with RawWS.connect(server.port) as ws:
        # Cut inside each multi-byte code point.
        cuts = [4, data.index("☃".encode()) + 1, data.index("😀".encode()) + 2]
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        ws.send(OP_TEXT, pieces[0], fin=False)
        for piece in pieces[1:-1]:
            ws.send(OP_CONT, piece, fin=False)
        ws.send(OP_CONT, pieces[-1])
        assert ws.recv_message() == text


# -- close codes ----------------------------------------------------------------------------------


def test_invalid_close_code_from_peer_is_1002(serve):
    # One server, one connection per code (a server per code would only add start-up time).
    server = serve("ws_app:app")
    codes = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000]
    for sid, code in enumerate(codes, 1):
        with RawWS.connect(server.port) as ws:
            ws.send(OP_CLOSE, close_payload(code, "x"))
            expect_close(ws, 1002)
        server.wait_for_output(rf"ws-app close sid={sid} code=1002\b")


def test_peer_close_code_is_echoed_and_tcp_closed(serve):
    server = serve("ws_app:app")
    codes = [1000, 1001, 1002, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4000, 4999]
    for sid, code in enumerate(codes, 1):
        with RawWS.connect(server.port) as ws:
            ws.send_close(code, "reason ✓")
            assert expect_close(ws, code).code == code
        server.wait_for_output(rf"ws-app close sid={sid} code={code} reason=reason ✓")


def test_empty_close_is_answered_with_an_empty_close(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_close(None)
        event = ws.recv_close()
        assert event.code is None  # an empty close frame, which the peer sees as 1005
        assert ws.wait_eof()
    server.wait_for_output(r"ws-app close sid=1 code=1005")


def test_close_frame_is_the_last_thing_read(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_raw(
            b"".join(
                [
                    _masked(OP_TEXT, b"first"),
                    _masked(OP_CLOSE, close_payload(1000)),
                    _masked(OP_TEXT, b"after the close"),
                ]
            )
        )
        assert ws.recv_message() == "first"
        expect_close(ws, 1000)


# -- message size: 1009 ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1001, 70_000, 1 << 40])
def test_oversized_frame_header_closes_with_1009_before_the_payload(serve, length):
    server = serve("ws_app:app", env={"MAX_MSG": "1000"})
    with RawWS.connect(server.port) as ws:
        ws.send_binary(b"x" * 1000)  # exactly the limit is fine
        assert ws.recv_message() == b"x" * 1000
        # Only the header (and masking key): the payload never comes.
        ws.send_raw(frame_header(OP_BINARY, length, mask=os.urandom(4)))
        expect_close(ws, 1009)
    server.wait_for_output(r"ws-app close sid=1 code=1009")


def test_fragments_over_the_limit_close_with_1009(serve):
    server = serve("ws_app:app", env={"MAX_MSG": "1000"})
    with RawWS.connect(server.port) as ws:
        ws.send(OP_TEXT, b"a" * 600, fin=False)
        ws.send(OP_CONT, b"b" * 400, fin=False)
        ws.send(OP_CONT, b"")  # 1000 in all: still fine
        assert ws.recv_message() == "a" * 600 + "b" * 400
        ws.send(OP_TEXT, b"a" * 600, fin=False)
        # The header of the second fragment already puts the message over the limit.
        ws.send_raw(frame_header(OP_CONT, 401, mask=os.urandom(4)))
        expect_close(ws, 1009)


def test_max_message_size_is_1mib_by_default(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_binary(b"\x00" * (1 << 20))
        assert ws.recv_message(timeout=10) == b"\x00" * (1 << 20)
        ws.send_raw(frame_header(OP_BINARY, (1 << 20) + 1, mask=os.urandom(4)))
        expect_close(ws, 1009)


# -- control frames -------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125))])
def test_ping_gets_a_pong_with_the_same_payload(serve, payload):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send(OP_PING, payload)
        event = ws.recv_event()
        assert isinstance(event, Pong) and event.payload == payload


def test_ping_between_fragments_is_answered_and_the_message_arrives_whole(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send(OP_TEXT, b"hel", fin=False)
        ws.send(OP_PING, b"mid-message")
        event = ws.recv_event()  # the pong comes before the message is complete
        assert isinstance(event, Pong) and event.payload == b"mid-message"
        ws.send(OP_CONT, b"lo ", fin=False)
        ws.send(OP_PING, b"again")
        ws.send(OP_CONT, b"world")
        events = [ws.recv_event(), ws.recv_event()]
        assert events == [Pong(b"again"), Message("hello world")]


def test_unsolicited_pong_is_ignored(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.pong(b"unasked")
        ws.send_text("still here")
        assert ws.recv_message() == "still here"


def test_many_frames_in_one_write_and_one_frame_over_many_writes(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_raw(b"".join(_masked(OP_TEXT, f"m{i}".encode()) for i in range(200)))
        assert [ws.recv_message() for _ in range(200)] == [f"m{i}" for i in range(200)]
        frame = _masked(OP_BINARY, b"0123456789" * 50)
        for i in range(0, len(frame), 7):
            ws.send_raw(frame[i : i + 7])
        assert ws.recv_message() == b"0123456789" * 50


# -- server-initiated close -----------------------------------------------------------------------


def test_server_close_reaches_the_websockets_client(serve):
    server = serve("ws_app:app")
    with connect(server.ws_url("/echo")) as ws:
        ws.send("!close 4000 bye")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4000, "bye")
    server.wait_for_output(r"ws-app close sid=1 code=4000 reason=bye")


def test_server_close_answered_by_raw_client(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_text("!close 4000 bye")
        event = ws.recv_close()
        assert (event.code, event.reason) == (4000, "bye")
        ws.send_close(4000)
        assert ws.wait_eof(timeout=2)  # well before the default close_timeout (5 s)
    server.wait_for_output(r"ws-app close sid=1 code=4000 reason=bye")


def test_server_close_unanswered_drops_tcp_after_close_timeout(serve):
    server = serve("ws_app:app", env={"CLOSE_TIMEOUT": "0.5"})
    with RawWS.connect(server.port) as ws:
        ws.send_text("!close 4000 bye")
        event = ws.recv_close()
        assert (event.code, event.reason) == (4000, "bye")
        started = time.monotonic()
        # No answer from us: the server waits close_timeout, then closes TCP.
        assert ws.wait_eof(timeout=4)
        assert time.monotonic() - started >= 0.25
    server.wait_for_output(r"ws-app close sid=1 code=4000 reason=bye")


def test_send_after_server_close_is_not_delivered(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_text("!close 1000")
        ws.send_text("after close")  # the server is closing: no echo, only the close
        event, skipped = ws.recv_until((Close,))
        assert event.code == 1000 and skipped == []
        ws.send_close(1000)
        assert ws.wait_eof()


# -- the websocket-client library -----------------------------------------------------------------


def test_websocket_client_library_echoes_text_and_binary(serve):
    server = serve("ws_app:app")
    ws = websocket.create_connection(server.ws_url("/echo"), timeout=5)
    try:
        for text in ["", "hello", "ünïcödé ☃ 😀", "x" * 125, "y" * 126, "z" * 65535, "w" * 70000]:
            ws.send(text)
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT
            assert data.decode("utf-8") == text
        for blob in [b"", b"\x00\xff", os.urandom(126), os.urandom(65536), os.urandom(300_000)]:
            ws.send_binary(blob)
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_BINARY
            assert data == blob
        ws.ping(b"are you there")
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"are you there"
        # A fragmented message from this client too.
        ws.send_frame(websocket.ABNF.create_frame("frag", websocket.ABNF.OPCODE_TEXT, fin=0))
        ws.send_frame(websocket.ABNF.create_frame("mented", websocket.ABNF.OPCODE_CONT, fin=1))
        assert ws.recv() == "fragmented"
        ws.send("!whoami")
        assert '"path":"/echo"' in ws.recv()
    finally:
        ws.close(status=1000)
    server.wait_for_output(r"ws-app close sid=1 code=1000")


def test_websockets_library_echoes_text_and_binary(serve):
    server = serve("ws_app:app")
    with connect(server.ws_url("/echo"), max_size=None) as ws:
        for message in ["", "héllo", "x" * 70000, b"", os.urandom(1000), os.urandom(1 << 20)]:
            ws.send(message)
            assert ws.recv(timeout=5) == message
        ws.send(["frag", "ment", "ed"])  # an iterable: a fragmented message
        assert ws.recv(timeout=5) == "fragmented"
        assert ws.ping(b"x").wait(5)


def test_several_pings_in_one_write_each_get_a_pong_in_order(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_raw(_masked(OP_PING, b"1") + _masked(OP_PING, b"2") + _masked(OP_TEXT, b"t"))
        events = [ws.recv_event() for _ in range(3)]
        assert events == [Pong(b"1"), Pong(b"2"), Message("t")]
        assert not any(isinstance(e, Ping) for e in events)
