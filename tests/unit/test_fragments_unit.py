"""Fragments per message are counted (max_fragments), empty continuation frames included, and
an empty fragment adds nothing to what the parser holds."""

import pytest

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

MASK = b"\x01\x02\x03\x04"


def frame(opcode, payload=b"", fin=True):
    return encode_frame(opcode, payload, fin=fin, mask=MASK)


def fragmented(n, opcode=OP_BINARY, piece=b"x"):
    """One message of `n` frames, `piece` in each."""
    frames = [frame(opcode, piece, fin=n == 1)]
    frames += [frame(OP_CONT, piece, fin=i == n - 1) for i in range(1, n)]
    return b"".join(frames)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_a_message_of_exactly_max_fragments_frames_passes(opcode):
    parser = FrameParser(max_fragments=8)
    [event] = parser.feed(fragmented(8, opcode))
    assert event == Message("x" * 8 if opcode == OP_TEXT else b"x" * 8)


def test_one_fragment_over_max_fragments_is_1009_from_its_header():
    parser = FrameParser(max_fragments=8)
    stream = fragmented(9)
    # Everything but the ninth frame's payload byte: its header alone decides.
    with pytest.raises(ProtocolError) as info:
        parser.feed(stream[:-1])
    assert info.value.code == 1009
    assert "more than 8 fragments" in info.value.reason


def test_the_count_restarts_with_each_message():
    parser = FrameParser(max_fragments=4)
    events = parser.feed(fragmented(4) * 50)
    assert events == [Message(b"xxxx")] * 50


def test_control_frames_between_fragments_do_not_count():
    parser = FrameParser(max_fragments=2)
    stream = (
        frame(OP_TEXT, b"a", fin=False) + frame(OP_PING, b"p") * 10 + frame(OP_CONT, b"b", fin=True)
    )
    events = parser.feed(stream)
    assert events == [Ping(b"p")] * 10 + [Message("ab")]


def test_empty_continuation_frames_are_counted():
    parser = FrameParser(max_fragments=1024)
    stream = frame(OP_TEXT, b"a", fin=False) + frame(OP_CONT, b"", fin=False) * 1023
    assert parser.feed(stream) == []  # 1024 frames: still within the limit
    with pytest.raises(ProtocolError) as info:
        parser.feed(frame(OP_CONT, b"", fin=False))
    assert info.value.code == 1009


def test_empty_continuation_frames_hold_nothing_without_a_limit():
    # max_fragments=None: 100,000 empty fragments are accepted, and the parser holds one part
    # (the first fragment's), not 100,000 empty ones.
    parser = FrameParser(max_fragments=None)
    parser.feed(frame(OP_TEXT, b"a", fin=False))
    empty = frame(OP_CONT, b"", fin=False)
    for _ in range(100):
        assert parser.feed(empty * 1000) == []
    assert len(parser._msg_parts) == 1  # white-box: what the parser holds for this message
    assert parser.feed(frame(OP_CONT, b"b", fin=True)) == [Message("ab")]


def test_fragments_split_across_feeds_count_once():
    parser = FrameParser(max_fragments=3)
    stream = fragmented(3)
    events = []
    for i in range(len(stream)):  # one byte per feed: headers are re-read from the tail
        events += parser.feed(stream[i : i + 1])
    assert events == [Message(b"xxx")]


def test_max_fragments_must_be_positive():
    with pytest.raises(ValueError, match="max_fragments"):
        FrameParser(max_fragments=0)
