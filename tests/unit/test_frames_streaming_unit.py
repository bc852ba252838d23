"""The parser processes text and compressed payloads as they arrive: invalid UTF-8 fails in the
feed that carries it, compressed messages inflate piece by piece under the limit, and any split
of a valid stream gives the same events."""

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blaze_green.ws.frames import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    FrameParser,
    Message,
    Ping,
    ProtocolError,
    encode_frame,
)

MASK = b"\x0f\xf0\xaa\x55"


def masked(opcode, payload, fin=True, rsv=0):
    return encode_frame(opcode, payload, fin=fin, mask=MASK, rsv=rsv)


def deflated(payload: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_invalid_utf8_early_in_a_big_text_frame_fails_before_the_rest_arrives():
    payload = b"ok" * 20 + b"\xff" + b"a" * (1 << 20)
    frame = masked(OP_TEXT, payload)
    parser = FrameParser(max_message_size=2 << 20)
    with pytest.raises(ProtocolError) as info:
        parser.feed(frame[:200])  # the header and the first ~190 payload bytes
    assert info.value.code == 1007


def test_invalid_utf8_early_in_a_continuation_frame_fails_at_once():
    parser = FrameParser(max_message_size=2 << 20)
    assert parser.feed(masked(OP_TEXT, b"first ", fin=False)) == []
    cont = masked(OP_CONT, b"\xc3\x28" + b"b" * 100_000)  # \xc3\x28: a bad 2-byte sequence
    with pytest.raises(ProtocolError) as info:
        parser.feed(cont[:50])
    assert info.value.code == 1007


def test_a_code_point_split_across_feeds_is_fine():
    text = "é€𝄞" * 30_000
    frame = masked(OP_TEXT, text.encode())
    for cut in (3, 11, 12, 13, 1000, len(frame) - 1):
        parser = FrameParser()
        assert parser.feed(frame[:cut]) == []
        assert parser.feed(frame[cut:]) == [Message(text)]


def test_an_invalid_byte_at_the_very_end_fails_in_the_last_feed():
    frame = masked(OP_TEXT, b"x" * 10_000 + b"\xe2\x82")  # a truncated 3-byte sequence
    parser = FrameParser()
    assert parser.feed(frame[:5000]) == []
    with pytest.raises(ProtocolError) as info:
        parser.feed(frame[5000:])
    assert info.value.code == 1007


def test_a_compressed_message_inflates_across_frames_and_feeds():
    text = ("compressed ✓ " * 4000).encode()
    body = deflated(text)
    third = len(body) // 3
    stream = (
        masked(OP_TEXT, body[:third], fin=False, rsv=0b100)
        + masked(OP_PING, b"between")
        + masked(OP_CONT, body[third : 2 * third], fin=False)
        + masked(OP_CONT, body[2 * third :])
    )
    for cut in (1, 7, len(stream) // 2, len(stream) - 3):
        parser = FrameParser(deflate=True)
        events = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert events == [Ping(b"between"), Message(text.decode())]


def test_compressed_binary_and_context_takeover():
    c = zlib.compressobj(6, zlib.DEFLATED, -15)  # a peer that keeps its context
    first = (c.compress(b"abc" * 100) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    second = (c.compress(b"abc" * 100) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    parser = FrameParser(deflate=True, inflate_context=True)
    events = parser.feed(masked(OP_BINARY, first, rsv=0b100) + masked(OP_BINARY, second, rsv=0b100))
    assert events == [Message(b"abc" * 100), Message(b"abc" * 100)]
    fresh = FrameParser(deflate=True)  # without context the second message cannot inflate
    with pytest.raises(ProtocolError) as info:
        fresh.feed(masked(OP_BINARY, first, rsv=0b100) + masked(OP_BINARY, second, rsv=0b100))
    assert info.value.code == 1007
    assert info.value.events == [Message(b"abc" * 100)]


def test_a_bomb_stops_at_the_limit_while_it_arrives():
    body = deflated(b"\0" * (32 << 20))
    frame = masked(OP_BINARY, body, rsv=0b100)
    parser = FrameParser(max_message_size=1 << 20, deflate=True)
    with pytest.raises(ProtocolError) as info:
        for i in range(0, len(frame), 4096):
            parser.feed(frame[i : i + 4096])
    assert info.value.code == 1009


def test_rsv1_rules():
    for frame, reason in (
        (masked(OP_TEXT, b"x", rsv=0b100), "reserved bits set"),  # not negotiated
    ):
        with pytest.raises(ProtocolError, match=reason):
            FrameParser().feed(frame)
    p = FrameParser(deflate=True)
    with pytest.raises(ProtocolError, match="control frame"):
        p.feed(masked(OP_PING, b"", rsv=0b100))
    p = FrameParser(deflate=True)
    with pytest.raises(ProtocolError, match="continuation"):
        p.feed(masked(OP_TEXT, b"a", fin=False) + masked(OP_CONT, b"b", rsv=0b100))
    with pytest.raises(ProtocolError, match="reserved bits"):
        FrameParser(deflate=True).feed(masked(OP_TEXT, b"a", rsv=0b010))


messages = st.lists(
    st.tuples(
        st.sampled_from(["text", "binary", "ping"]),
        st.binary(max_size=3000),
        st.booleans(),  # compressed
        st.integers(min_value=1, max_value=3),  # fragments
    ),
    max_size=6,
)


def build(spec):
    stream, expected = b"", []
    for kind, raw, compressed, fragments in spec:
        if kind == "ping":
            stream += masked(OP_PING, raw[:125])
            expected.append(Ping(raw[:125]))
            continue
        data = raw.decode("latin-1").encode() if kind == "text" else raw
        body = deflated(data) if compressed else data
        size = max(1, len(body) // fragments)
        pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        for i, piece in enumerate(pieces):
            opcode = (OP_TEXT if kind == "text" else OP_BINARY) if i == 0 else OP_CONT
            rsv = 0b100 if compressed and i == 0 else 0
            stream += masked(opcode, piece, fin=i == len(pieces) - 1, rsv=rsv)
        expected.append(Message(data.decode() if kind == "text" else data))
    return stream, expected


@settings(max_examples=300, deadline=None)
@given(messages, st.lists(st.integers(min_value=0, max_value=20_000), max_size=8))
def test_any_split_gives_the_same_events(spec, cuts):
    stream, expected = build(spec)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    parser = FrameParser(deflate=True)
    events, last = [], 0
    for point in [*points, len(stream)]:
        events += parser.feed(stream[last:point])
        last = point
    assert events == expected
