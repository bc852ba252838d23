"""Tests for blaze_green.ws.frames: byte-exact unit tests, property tests, websockets interop."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blaze_green.ws.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    FrameParser,
    Message,
    Ping,
    Pong,
    ProtocolError,
    apply_mask,
    binary_frame,
    close_payload,
    encode_frame,
    is_valid_close_code,
    text_frame,
)

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def xor(payload: bytes, mask: bytes = MASK) -> bytes:
    """Reference masking, byte by byte (independent of apply_mask)."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def feed_whole(data: bytes, **kwargs: object) -> list:
    return FrameParser(**kwargs).feed(data)  # type: ignore[arg-type]


def feed_bytewise(data: bytes, **kwargs: object) -> list:
    parser = FrameParser(**kwargs)  # type: ignore[arg-type]
    events: list = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    return events


def assert_fails(data: bytes, code: int, **kwargs: object) -> None:
    """The stream fails with ``code`` whether it arrives at once or byte by byte."""
    for feed in (feed_whole, feed_bytewise):
        with pytest.raises(ProtocolError) as info:
            feed(data, **kwargs)
        assert info.value.code == code, (feed.__name__, info.value)


def assert_parses(data: bytes, expected: list, **kwargs: object) -> None:
    assert feed_whole(data, **kwargs) == expected
    assert feed_bytewise(data, **kwargs) == expected


# ---------------------------------------------------------------------------------------------
# Rule violations, each as literal bytes and via encode_frame.


def test_unmasked_client_frame_is_1002() -> None:
    assert_fails(bytes([0x81, 0x05]) + b"hello", 1002)
    assert_fails(encode_frame(OP_TEXT, b"hello"), 1002)
    assert_fails(encode_frame(OP_PING, b""), 1002)


def test_masked_server_frame_is_1002_on_client_side() -> None:
    assert_fails(bytes([0x81, 0x85]) + MASK + xor(b"hello"), 1002, expect_masked=False)
    assert_fails(encode_frame(OP_BINARY, b"x", mask=MASK), 1002, expect_masked=False)


def test_client_side_accepts_unmasked_frames() -> None:
    assert_parses(bytes([0x81, 0x05]) + b"hello", [Message("hello")], expect_masked=False)
    stream = text_frame("hé") + binary_frame(b"\x00\x01")
    assert_parses(stream, [Message("hé"), Message(b"\0\1")], expect_masked=False)


@pytest.mark.parametrize("rsv_bit", [0x40, 0x20, 0x10])
def test_reserved_bits_are_1002(rsv_bit: int) -> None:
    assert_fails(bytes([0x80 | rsv_bit | OP_TEXT, 0x82]) + MASK + xor(b"hi"), 1002)
    assert_fails(encode_frame(OP_TEXT, b"hi", mask=MASK, rsv=rsv_bit >> 4), 1002)
    assert_fails(encode_frame(OP_PING, b"", mask=MASK, rsv=rsv_bit >> 4), 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_unknown_opcode_is_1002(opcode: int) -> None:
    assert_fails(bytes([0x80 | opcode, 0x80]) + MASK, 1002)
    assert_fails(encode_frame(opcode, b"abc", mask=MASK), 1002)
    # Also after a valid message: the first event is not enough to save the stream.
    assert_fails(encode_frame(OP_TEXT, b"ok", mask=MASK) + encode_frame(opcode, mask=MASK), 1002)


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_fragmented_control_frame_is_1002(opcode: int) -> None:
    assert_fails(bytes([opcode, 0x80]) + MASK, 1002)  # FIN=0
    assert_fails(encode_frame(opcode, b"", fin=False, mask=MASK), 1002)


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_control_frame_over_125_bytes_is_1002(opcode: int) -> None:
    payload = b"p" * 126
    assert_fails(bytes([0x80 | opcode, 0xFE, 0x00, 0x7E]) + MASK + xor(payload), 1002)
    assert_fails(encode_frame(opcode, payload, mask=MASK), 1002)
    # Decided from the 2-byte header alone.
    with pytest.raises(ProtocolError) as info:
        FrameParser().feed(bytes([0x80 | opcode, 0xFE]))
    assert info.value.code == 1002


def test_control_frame_of_exactly_125_bytes_is_fine() -> None:
    assert_parses(encode_frame(OP_PING, b"p" * 125, mask=MASK), [Ping(b"p" * 125)])


def test_continuation_without_message_is_1002() -> None:
    assert_fails(bytes([0x80 | OP_CONT, 0x81]) + MASK + xor(b"x"), 1002)
    assert_fails(encode_frame(OP_CONT, b"x", mask=MASK), 1002)
    # Also right after a message was completed.
    done = encode_frame(OP_TEXT, b"a", fin=False, mask=MASK) + encode_frame(
        OP_CONT, b"b", mask=MASK
    )
    assert_fails(done + encode_frame(OP_CONT, b"c", mask=MASK), 1002)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_new_data_frame_inside_fragmented_message_is_1002(opcode: int) -> None:
    first = bytes([OP_TEXT, 0x82]) + MASK + xor(b"ab")  # FIN=0 text
    assert_fails(first + bytes([0x80 | opcode, 0x81]) + MASK + xor(b"c"), 1002)
    first = encode_frame(OP_BINARY, b"ab", fin=False, mask=MASK)
    assert_fails(first + encode_frame(opcode, b"c", mask=MASK), 1002)


@pytest.mark.parametrize("max_size", [None, 1 << 20])
def test_64_bit_length_with_top_bit_set_is_1002(max_size: int | None) -> None:
    header = bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5])
    assert_fails(header, 1002, max_message_size=max_size)
    assert_fails(header + MASK + xor(b"hello"), 1002, max_message_size=max_size)


def test_invalid_utf8_single_frame_is_1007() -> None:
    assert_fails(bytes([0x81, 0x82]) + MASK + xor(b"\xc3\x28"), 1007)
    for bad in (b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"a\xe2\x82"):
        assert_fails(encode_frame(OP_TEXT, bad, mask=MASK), 1007)


def test_invalid_utf8_fails_at_the_bad_fragment_not_at_fin() -> None:
    for bad in (b"ok\xff", b"\xe2\x28", b"\xed\xa0", b"\xf4\x90", b"\xf8"):
        parser = FrameParser()
        first = encode_frame(OP_TEXT, bad, fin=False, mask=MASK)
        with pytest.raises(ProtocolError) as info:
            parser.feed(first)  # the final fragment has not even been sent
        assert info.value.code == 1007, bad
    # Literal bytes: the second of three fragments is bad.
    parser = FrameParser()
    assert parser.feed(bytes([0x01, 0x82]) + MASK + xor(b"ab")) == []
    with pytest.raises(ProtocolError) as info:
        parser.feed(bytes([0x00, 0x81]) + MASK + xor(b"\xfe"))
    assert info.value.code == 1007


def test_code_point_truncated_at_fin_is_1007() -> None:
    stream = encode_frame(OP_TEXT, b"a\xe2", fin=False, mask=MASK)
    stream += encode_frame(OP_CONT, b"\x82", mask=MASK)  # FIN, still one byte short
    assert_fails(stream, 1007)


# ---------------------------------------------------------------------------------------------
# Text that spans feeds is validated as it arrives, not when its frame completes.

MIB = 1 << 20


def masked_header(opcode: int, length: int, fin: bool = True, mask: bytes = MASK) -> bytes:
    """Header (with mask key) of a masked frame of ``length`` payload bytes."""
    return encode_frame(opcode, b"\0" * length, fin=fin, mask=mask)[: -length or None]


def feed_expecting_1007(parser: FrameParser, data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parser.feed(data)
    assert info.value.code == 1007
    return info.value


@pytest.mark.parametrize("with_header", [True, False])
def test_invalid_utf8_early_in_a_1_mib_text_frame_fails_before_the_rest_arrives(
    with_header: bool,
) -> None:
    payload = b"a" * 40 + b"\xc3\x28" + b"b" * (MIB - 42)  # bad bytes 40-41 of 1 MiB
    frame = encode_frame(OP_TEXT, payload, mask=MASK)
    hlen = len(frame) - MIB - 4
    assert frame[: hlen + 4] == masked_header(OP_TEXT, MIB)
    parser = FrameParser(max_message_size=None)
    if with_header:  # header and first 100 payload bytes in one feed (the parse path)
        feed_expecting_1007(parser, frame[: hlen + 4 + 100])
    else:  # header alone, then the first 100 payload bytes (the awaiting-payload path)
        assert parser.feed(frame[: hlen + 4]) == []
        feed_expecting_1007(parser, frame[hlen + 4 : hlen + 4 + 100])
    # The parser is dead: the rest of the frame is never awaited.
    with pytest.raises(ProtocolError):
        parser.feed(frame[hlen + 4 + 100 :])


def test_invalid_utf8_early_in_a_1_mib_continuation_frame_fails_at_once() -> None:
    parser = FrameParser(max_message_size=None)
    assert parser.feed(encode_frame(OP_TEXT, "début ".encode(), fin=False, mask=MASK)) == []
    payload = "é".encode() * 30 + b"\xff" + b"c" * (MIB - 61)
    frame = encode_frame(OP_CONT, payload, mask=MASK)
    start = len(frame) - MIB
    assert parser.feed(frame[: start + 50]) == []  # 25 valid "é"
    feed_expecting_1007(parser, frame[start + 50 : start + 100])
    # A non-final continuation frame too, its bad byte arriving mid-frame in the third feed.
    parser = FrameParser(max_message_size=None)
    assert parser.feed(encode_frame(OP_TEXT, b"x", fin=False, mask=MASK)) == []
    frame = encode_frame(OP_CONT, b"y" * 5000 + b"\xed\xa0\x80" + b"z" * 5000, fin=False, mask=MASK)
    assert parser.feed(frame[:3000]) == []
    assert parser.feed(frame[3000:5004]) == []  # the payload up to just before the bad bytes
    feed_expecting_1007(parser, frame[5004:5010])


def test_events_before_a_bad_text_piece_are_attached_to_the_error() -> None:
    parser = FrameParser(max_message_size=None)
    first = encode_frame(OP_TEXT, b"one", mask=MASK) + encode_frame(OP_PING, b"p", mask=MASK)
    big = encode_frame(OP_TEXT, b"\xfe" + b"x" * 99_999, mask=MASK)
    error = feed_expecting_1007(parser, first + big[:1000])
    assert error.events == [Message("one"), Ping(b"p")]
    # The same when the bad piece completes an earlier frame's payload first.
    parser = FrameParser(max_message_size=None)
    split = encode_frame(OP_BINARY, b"\x01" * 300, mask=MASK)
    assert parser.feed(split[:100]) == []
    error = feed_expecting_1007(parser, split[100:] + big[:20])
    assert error.events == [Message(b"\x01" * 300)]


@pytest.mark.parametrize("mask", [MASK, None])
def test_code_point_split_across_feeds_at_every_offset_passes(mask: bytes | None) -> None:
    # Every split point of a frame whose payload mixes 1- to 4-byte characters; the pieces
    # start at every mask phase (offset % 4) and cut every character at every byte.
    text = "a€b😀cé" * 3 + "x" * 600 + "日本😀" * 50
    frame = encode_frame(OP_TEXT, text.encode(), mask=mask)
    expect_masked = mask is not None
    for cut in range(1, len(frame)):
        parser = FrameParser(expect_masked=expect_masked)
        assert parser.feed(frame[:cut]) + parser.feed(frame[cut:]) == [Message(text)], cut
    # Three pieces, one of them tiny, around each byte of "😀".
    at = 2 + 2 + 4 + text.encode().index("😀".encode())  # header with 16-bit length, mask
    for a in range(at - 3, at + 5):
        for b in range(a + 1, a + 6):
            parser = FrameParser(expect_masked=expect_masked)
            events = parser.feed(frame[:a]) + parser.feed(frame[a:b]) + parser.feed(frame[b:])
            assert events == [Message(text)], (a, b)


def test_code_point_split_across_feeds_and_fragments() -> None:
    raw = "ab€😀".encode()
    stream = encode_frame(OP_TEXT, raw[:3], fin=False, mask=MASK)  # "ab" + 1st byte of "€"
    stream += encode_frame(OP_CONT, raw[3:], mask=MASK)
    assert_parses(stream, [Message("ab€😀")])


def test_invalid_byte_at_the_end_of_a_split_frame_fails_in_the_last_feed() -> None:
    for bad_end in (b"\xff", b"\xe2\x82", b"\xc3"):  # bad byte, or a code point cut at FIN
        payload = "é€".encode() * 400 + bad_end
        frame = encode_frame(OP_TEXT, payload, mask=MASK)
        parser = FrameParser()
        for i in range(0, len(frame) - 1, 333):
            assert parser.feed(frame[i : min(i + 333, len(frame) - 1)]) == []
        feed_expecting_1007(parser, frame[-1:])
    # Not FIN: a cut code point is fine at the end of the frame, a bad byte is not.
    frame = encode_frame(OP_TEXT, b"q" * 700 + b"\xe2\x82", fin=False, mask=MASK)
    parser = FrameParser()
    assert parser.feed(frame[:400]) + parser.feed(frame[400:]) == []
    assert parser.feed(encode_frame(OP_CONT, b"\xac", mask=MASK)) == [Message("q" * 700 + "€")]
    frame = encode_frame(OP_TEXT, b"q" * 700 + b"\xc0", fin=False, mask=MASK)
    parser = FrameParser()
    assert parser.feed(frame[:400]) == []
    feed_expecting_1007(parser, frame[400:])


def test_truncated_surrogate_split_across_feeds_fails_at_once() -> None:
    frame = encode_frame(OP_TEXT, b"w" * 1000 + b"\xed\xa0\x80" + b"w" * 1000, mask=MASK)
    at = 4 + 4 + 1000  # payload offset of the \xed
    parser = FrameParser()
    assert parser.feed(frame[: at + 1]) == []  # "...\xed" could still become valid
    feed_expecting_1007(parser, frame[at + 1 : at + 2])  # "\xed\xa0" cannot


@pytest.mark.parametrize("use_c", [True, False])
def test_streamed_text_with_and_without_the_c_mask(monkeypatch, use_c: bool) -> None:
    import blaze_green.ws.frames as frames_mod

    if not use_c:
        monkeypatch.setattr(frames_mod, "_c_apply_mask", None)
    elif frames_mod._c_apply_mask is None:
        pytest.skip("websockets' C speedup is not installed")
    text = "héllo wörld ✓ 😀 " * 20000
    first, second = text[:1000], text[1000:]
    stream = encode_frame(OP_TEXT, first.encode(), fin=False, mask=os.urandom(4))
    stream += encode_frame(OP_CONT, second.encode(), mask=os.urandom(4))
    # Piece sizes around _INT_MASK_MAX and not multiples of 4, so both unmask paths run at
    # every mask phase.
    for size in (511, 513, 4097, 65537):
        parser = FrameParser(max_message_size=None)
        events: list = []
        for i in range(0, len(stream), size):
            events += parser.feed(stream[i : i + size])
        assert events == [Message(text)], size


def test_close_payload_of_one_byte_is_1002() -> None:
    assert_fails(bytes([0x88, 0x81]) + MASK + xor(b"\x03"), 1002)
    assert_fails(encode_frame(OP_CLOSE, b"\x03", mask=MASK), 1002)


BAD_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]
GOOD_CLOSE_CODES = [*range(1000, 1004), *range(1007, 1015), 3000, 3999, 4000, 4999]


@pytest.mark.parametrize("code", BAD_CLOSE_CODES)
def test_invalid_close_code_is_1002(code: int) -> None:
    assert not is_valid_close_code(code)
    assert_fails(bytes([0x88, 0x82]) + MASK + xor(struct.pack("!H", code)), 1002)
    assert_fails(encode_frame(OP_CLOSE, close_payload(code, "bye"), mask=MASK), 1002)


@pytest.mark.parametrize("code", GOOD_CLOSE_CODES)
def test_valid_close_codes(code: int) -> None:
    assert is_valid_close_code(code)
    frame = encode_frame(OP_CLOSE, close_payload(code, "bye"), mask=MASK)
    assert_parses(frame, [Close(code, "bye")])


def test_close_reason_not_utf8_is_1007() -> None:
    assert_fails(bytes([0x88, 0x84]) + MASK + xor(b"\x03\xe8\xff\xfe"), 1007)
    assert_fails(encode_frame(OP_CLOSE, b"\x03\xe8a\xed\xa0\x80", mask=MASK), 1007)


# ---------------------------------------------------------------------------------------------
# max_message_size


def test_oversized_frame_fails_from_its_header_alone() -> None:
    parser = FrameParser(max_message_size=1 << 20)
    header = bytes([0x82, 0xFF]) + (2 << 20).to_bytes(8, "big")  # 10 bytes, no mask, no payload
    with pytest.raises(ProtocolError) as info:
        parser.feed(header)
    assert info.value.code == 1009
    # 16-bit length, text, header only.
    with pytest.raises(ProtocolError) as info:
        FrameParser(max_message_size=1000).feed(bytes([0x81, 0xFE, 0x03, 0xE9]))
    assert info.value.code == 1009
    assert_fails(encode_frame(OP_BINARY, b"x" * 1001, mask=MASK), 1009, max_message_size=1000)


def test_message_of_exactly_the_limit_is_fine() -> None:
    data = os.urandom(1000)
    assert_parses(encode_frame(OP_BINARY, data, mask=MASK), [Message(data)], max_message_size=1000)
    empty = encode_frame(OP_BINARY, b"", mask=MASK)
    assert_parses(empty, [Message(b"")], max_message_size=0)


def test_fragments_summing_over_the_limit_fail_at_the_second_header() -> None:
    parser = FrameParser(max_message_size=100)
    assert parser.feed(encode_frame(OP_TEXT, b"a" * 60, fin=False, mask=MASK)) == []
    # A ping in between does not count towards the message.
    assert parser.feed(encode_frame(OP_PING, b"p" * 100, mask=MASK)) == [Ping(b"p" * 100)]
    with pytest.raises(ProtocolError) as info:
        parser.feed(bytes([0x80, 0x80 | 41]))  # 2-byte header of a 41-byte final continuation
    assert info.value.code == 1009
    # 60 + 40 is exactly the limit.
    stream = encode_frame(OP_TEXT, b"a" * 60, fin=False, mask=MASK)
    stream += encode_frame(OP_CONT, b"b" * 40, mask=MASK)
    assert_parses(stream, [Message("a" * 60 + "b" * 40)], max_message_size=100)


def test_max_message_size_none_is_unlimited() -> None:
    data = os.urandom(3 << 20)
    frame = encode_frame(OP_BINARY, data, mask=MASK)
    parser = FrameParser(max_message_size=None)
    events = []
    for i in range(0, len(frame), 65536):
        events += parser.feed(frame[i : i + 65536])
    assert events == [Message(data)]


def test_limit_resets_after_each_message() -> None:
    one = encode_frame(OP_BINARY, b"x" * 80, mask=MASK)
    assert_parses(one * 5, [Message(b"x" * 80)] * 5, max_message_size=100)


# ---------------------------------------------------------------------------------------------
# Valid streams


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_single_frame_messages_of_each_length_class(opcode: int, length: int) -> None:
    payload = bytes((i * 7) % 128 for i in range(length))  # ASCII, so also valid text
    expected = [Message(payload.decode() if opcode == OP_TEXT else payload)]
    assert_parses(encode_frame(opcode, payload, mask=MASK), expected)
    # Fed in uneven pieces too.
    frame = encode_frame(opcode, payload, mask=os.urandom(4))
    parser = FrameParser()
    events: list = []
    for i in range(0, len(frame), 1000):
        events += parser.feed(frame[i : i + 1000])
    assert events == expected


def test_literal_masked_text_frame() -> None:
    # RFC 6455 5.7 example, masked "Hello" from a client.
    frame = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert_parses(frame, [Message("Hello")])
    assert encode_frame(OP_TEXT, b"Hello", mask=bytes([0x37, 0xFA, 0x21, 0x3D])) == frame


def test_fragmented_text_with_code_point_split_across_fragments() -> None:
    text = "a€b😀c"
    raw = text.encode()
    stream = encode_frame(OP_TEXT, raw[:2], fin=False, mask=MASK)  # "a" + first byte of "€"
    stream += encode_frame(OP_CONT, raw[2:6], fin=False, mask=MASK)  # rest of "€", "b", 1 byte
    stream += encode_frame(OP_CONT, raw[6:], mask=MASK)
    assert_parses(stream, [Message(text)])
    # Literal bytes: "é" = C3 A9 split in two fragments.
    literal = bytes([0x01, 0x81]) + MASK + xor(b"\xc3") + bytes([0x80, 0x81]) + MASK + xor(b"\xa9")
    assert_parses(literal, [Message("é")])


def test_fragmented_binary_with_empty_fragments() -> None:
    stream = encode_frame(OP_BINARY, b"", fin=False, mask=MASK)
    stream += encode_frame(OP_CONT, b"ab", fin=False, mask=MASK)
    stream += encode_frame(OP_CONT, b"", fin=False, mask=MASK)
    stream += encode_frame(OP_CONT, b"c", mask=MASK)
    assert_parses(stream, [Message(b"abc")])


def test_control_frames_between_fragments() -> None:
    stream = encode_frame(OP_TEXT, b"frag1 ", fin=False, mask=MASK)
    stream += bytes([0x89, 0x84]) + MASK + xor(b"ping")
    stream += encode_frame(OP_CONT, b"frag2 ", fin=False, mask=MASK)
    stream += encode_frame(OP_PONG, b"pong", mask=MASK)
    stream += encode_frame(OP_CONT, b"end", mask=MASK)
    expected = [Ping(b"ping"), Pong(b"pong"), Message("frag1 frag2 end")]
    assert_parses(stream, expected)


def test_close_with_and_without_code_and_reason() -> None:
    assert_parses(bytes([0x88, 0x80]) + MASK, [Close(None, "")])
    assert_parses(bytes([0x88, 0x82]) + MASK + xor(b"\x03\xe8"), [Close(1000, "")])
    frame = encode_frame(OP_CLOSE, close_payload(1001, "gône"), mask=MASK)
    assert_parses(frame, [Close(1001, "gône")])
    assert_parses(encode_frame(OP_CLOSE, close_payload(None), mask=MASK), [Close(None, "")])


def test_input_after_close_is_ignored() -> None:
    parser = FrameParser()
    stream = encode_frame(OP_PING, b"1", mask=MASK) + encode_frame(OP_CLOSE, b"", mask=MASK)
    stream += encode_frame(OP_TEXT, b"late", mask=MASK) + b"\xff\xff garbage"
    assert parser.feed(stream) == [Ping(b"1"), Close(None, "")]
    assert parser.feed(encode_frame(OP_TEXT, b"later", mask=MASK)) == []
    assert parser.feed(b"\x00 more garbage") == []


def test_close_completing_a_split_payload_stops_parsing() -> None:
    frame = encode_frame(OP_CLOSE, close_payload(1000, "bye"), mask=MASK)
    parser = FrameParser()
    assert parser.feed(frame[:7]) == []
    assert parser.feed(frame[7:] + b"\xff garbage") == [Close(1000, "bye")]
    assert parser.feed(b"x") == []


def test_parser_stays_failed_after_an_error() -> None:
    parser = FrameParser()
    with pytest.raises(ProtocolError) as first:
        parser.feed(encode_frame(OP_TEXT, b"\xff", mask=MASK))
    for later in (encode_frame(OP_TEXT, b"fine", mask=MASK), b""):
        with pytest.raises(ProtocolError) as again:
            parser.feed(later)
        assert (again.value.code, again.value.reason) == (1007, first.value.reason)


def test_error_carries_the_events_decoded_before_it() -> None:
    stream = encode_frame(OP_TEXT, b"one", mask=MASK) + encode_frame(OP_PING, b"p", mask=MASK)
    stream += encode_frame(OP_TEXT, b"two", mask=MASK, rsv=4)
    with pytest.raises(ProtocolError) as info:
        FrameParser().feed(stream)
    assert info.value.code == 1002
    assert info.value.events == [Message("one"), Ping(b"p")]
    assert str(info.value) == "reserved bits set (close code 1002)"


def test_feed_accepts_bytearray_and_memoryview_and_copies_them() -> None:
    frame = encode_frame(OP_BINARY, b"abcdef", mask=MASK)
    buf = bytearray(frame)
    parser = FrameParser()
    assert parser.feed(memoryview(buf)[:5]) == []
    buf[:] = b"\0" * len(buf)  # the caller reuses its buffer; the parser must not care
    assert parser.feed(bytearray(frame[5:])) == [Message(b"abcdef")]


def test_many_small_frames_in_one_feed() -> None:
    frames = [
        encode_frame(OP_BINARY, bytes([i % 256]) * 100, mask=os.urandom(4)) for i in range(500)
    ]
    events = FrameParser().feed(b"".join(frames))
    assert events == [Message(bytes([i % 256]) * 100) for i in range(500)]


def test_event_equality_and_repr() -> None:
    assert Message("a") == Message("a") and Message("a") != Message(b"a")
    assert Ping(b"x") != Pong(b"x") and Close(1000, "") == Close(1000, "")
    assert len({Message("a"), Message("a"), Close(None, "")}) == 2
    assert repr(Close(None, "")) == "Close(None, '')" and "..." in repr(Message("x" * 100))


# ---------------------------------------------------------------------------------------------
# Encoding helpers


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, [0x82, 0x00]),
        (125, [0x82, 0x7D]),
        (126, [0x82, 0x7E, 0x00, 0x7E]),
        (65535, [0x82, 0x7E, 0xFF, 0xFF]),
        (65536, [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
    ],
)
def test_encode_frame_header_bytes(length: int, header: list[int]) -> None:
    payload = os.urandom(length)
    frame = encode_frame(OP_BINARY, payload)
    assert list(frame[: len(header)]) == header
    assert frame[len(header) :] == payload
    assert binary_frame(payload) == frame
    masked = encode_frame(OP_BINARY, payload, mask=MASK)
    assert list(masked[: len(header)]) == [header[0], header[1] | 0x80, *header[2:]]
    assert masked[len(header) : len(header) + 4] == MASK
    assert masked[len(header) + 4 :] == xor(payload)


def test_encode_frame_first_byte() -> None:
    assert encode_frame(OP_TEXT, b"", fin=False)[0] == 0x01
    assert encode_frame(OP_CONT, b"")[0] == 0x80
    assert encode_frame(OP_PING, b"", rsv=0b101)[0] == 0x80 | 0x40 | 0x10 | 0x9
    assert encode_frame(0xF, b"", fin=False, rsv=7) == bytes([0x7F, 0x00])
    assert text_frame("é") == bytes([0x81, 0x02, 0xC3, 0xA9])
    assert binary_frame(memoryview(b"ab")) == bytes([0x82, 0x02]) + b"ab"
    for bad in ({"opcode": 16}, {"opcode": 1, "rsv": 8}, {"opcode": 1, "mask": b"abc"}):
        with pytest.raises(ValueError):
            encode_frame(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 100, 32767, 32768, 32769, 65536 + 3, 200_001])
def test_apply_mask_matches_reference(length: int) -> None:
    data = os.urandom(length)
    mask = os.urandom(4)
    assert apply_mask(data, mask) == xor(data, mask)
    assert apply_mask(bytearray(data), bytearray(mask)) == xor(data, mask)
    assert apply_mask(memoryview(data), mask) == xor(data, mask)
    assert apply_mask(apply_mask(data, mask), mask) == data
    with pytest.raises(ValueError):
        apply_mask(data, b"12345")


def test_close_payload() -> None:
    assert close_payload() == b"\x03\xe8"
    assert close_payload(None) == b""
    assert close_payload(4001, "bye") == b"\x0f\xa1bye"
    assert close_payload(1000, "a" * 123) == b"\x03\xe8" + b"a" * 123
    assert close_payload(1000, "a" * 124) == b"\x03\xe8" + b"a" * 123


@pytest.mark.parametrize("prefix", range(4))
@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_close_payload_truncates_on_a_character_boundary(prefix: int, char: str) -> None:
    reason = "x" * prefix + char * 100
    payload = close_payload(1000, reason)
    assert len(payload) <= 125
    text = payload[2:].decode("utf-8")  # must not raise
    assert reason.startswith(text)
    assert len(payload) > 125 - len(char.encode())  # cut at most one character short
    assert feed_whole(encode_frame(OP_CLOSE, payload, mask=MASK)) == [Close(1000, text)]


@given(st.text(st.characters(codec="utf-8"), max_size=200), st.integers(1000, 4999))
@settings(max_examples=100, deadline=None)
def test_close_payload_property(reason: str, code: int) -> None:
    payload = close_payload(code, reason)
    assert len(payload) <= 125 and payload[:2] == code.to_bytes(2, "big")
    assert reason.startswith(payload[2:].decode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Property tests


texts = st.text(st.characters(codec="utf-8"), max_size=150)
binaries = st.binary(max_size=300)
messages = st.one_of(texts, binaries)


def split_points(draw: st.DrawFn, length: int, max_pieces: int = 12) -> list[int]:
    points = draw(st.lists(st.integers(0, length), max_size=max_pieces))
    return sorted(set(points))


def pieces(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# Texts up to a few KiB (repeats of a short random text), so that their frames are unmasked by
# both paths (_INT_MASK_MAX) and split pieces start at every mask phase.
long_texts = st.builds(
    lambda text, times: text * times,
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    st.integers(1, 100),
)


@st.composite
def frame_specs(
    draw: st.DrawFn, min_size: int = 0, msgs: st.SearchStrategy = messages
) -> tuple[list[list[dict]], list]:
    """A valid stream as a list of messages, each a list of frame specs; and its events."""
    stream: list[list[dict]] = []
    expected: list = []
    for msg in draw(st.lists(msgs, min_size=min_size, max_size=6)):
        raw = msg.encode() if isinstance(msg, str) else msg
        cuts = split_points(draw, len(raw), max_pieces=4)
        chunks = pieces(raw, cuts)
        frames: list[dict] = []
        for i, chunk in enumerate(chunks):
            opcode = (OP_TEXT if isinstance(msg, str) else OP_BINARY) if i == 0 else OP_CONT
            final = i == len(chunks) - 1
            frames.append({"opcode": opcode, "payload": chunk, "fin": final})
            if final:
                expected.append(Message(msg))  # reported with the final fragment
            if draw(st.integers(0, 3)) == 0:  # a control frame after this fragment
                ctrl = draw(st.sampled_from([OP_PING, OP_PONG]))
                body = draw(st.binary(max_size=125))
                frames.append({"opcode": ctrl, "payload": body, "fin": True})
                expected.append(Ping(body) if ctrl == OP_PING else Pong(body))
        stream.append(frames)
    return stream, expected


def encode_stream(draw: st.DrawFn, stream: list[list[dict]]) -> bytes:
    out = []
    for frames in stream:
        for spec in frames:
            spec = {"mask": draw(st.binary(min_size=4, max_size=4)), **spec}
            out.append(encode_frame(**spec))
    return b"".join(out)


@given(st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_valid_streams_parse_whatever_the_split(data: st.DataObject) -> None:
    stream, expected = data.draw(frame_specs())
    close = data.draw(
        st.sampled_from([None, Close(None, ""), Close(1000, "bye"), Close(4000, "é")])
    )
    raw = encode_stream(data.draw, stream)
    if close is not None:
        payload = close_payload(close.code, close.reason)
        raw += encode_frame(OP_CLOSE, payload, mask=os.urandom(4)) + b"\xff ignored"
        expected.append(close)
    parser = FrameParser(max_message_size=data.draw(st.sampled_from([None, 1 << 20])))
    events: list = []
    for piece in pieces(raw, split_points(data.draw, len(raw))):
        events += parser.feed(piece)
    assert events == expected


@given(st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_split_of_a_valid_stream_yields_the_same_events_as_one_feed(
    data: st.DataObject,
) -> None:
    stream, expected = data.draw(frame_specs(msgs=st.one_of(texts, long_texts, binaries)))
    masked = data.draw(st.booleans())  # client-to-server (masked) or server-to-client frames
    if not masked:
        for frames in stream:
            for spec in frames:
                spec["mask"] = None
    raw = encode_stream(data.draw, stream)
    whole = FrameParser(max_message_size=None, expect_masked=masked).feed(raw)
    assert whole == expected
    parser = FrameParser(max_message_size=None, expect_masked=masked)
    events: list = []
    for piece in pieces(raw, split_points(data.draw, len(raw), max_pieces=40)):
        events += parser.feed(piece)
    assert events == whole


CORRUPTIONS = [
    "rsv",
    "unmasked",
    "bad_opcode",
    "fragmented_control",
    "oversized_control",
    "invalid_utf8",
    "bad_close_code",
    "orphan_continuation",
    "oversized_message",
]
CORRUPTION_CODES = {"invalid_utf8": 1007, "oversized_message": 1009}


@given(st.data(), st.sampled_from(CORRUPTIONS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_corrupted_streams_fail_with_the_matching_code(data: st.DataObject, kind: str) -> None:
    stream, _ = data.draw(frame_specs(min_size=1))
    flat = [spec for frames in stream for spec in frames]
    boundary = data.draw(st.integers(0, len(stream)))  # insert whole messages between messages
    if kind in ("rsv", "unmasked", "bad_opcode"):
        spec = flat[data.draw(st.integers(0, len(flat) - 1))]
        if kind == "rsv":
            spec["rsv"] = data.draw(st.integers(1, 7))
        elif kind == "unmasked":
            spec["mask"] = None
        else:
            spec["opcode"] = data.draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]))
    elif kind == "fragmented_control":
        # Control frames may sit anywhere, even between fragments.
        opcode = data.draw(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]))
        flat.insert(data.draw(st.integers(0, len(flat))), {"opcode": opcode, "fin": False})
        stream = [flat]
    elif kind == "oversized_control":
        body = data.draw(st.binary(min_size=126, max_size=300))
        flat.insert(data.draw(st.integers(0, len(flat))), {"opcode": OP_PING, "payload": body})
        stream = [flat]
    elif kind == "invalid_utf8":
        bad = data.draw(
            st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\xc0"])
        )
        good = data.draw(texts).encode()
        # A text message whose bad bytes sit in the first or a later fragment.
        frames = (
            [{"opcode": OP_TEXT, "payload": good + bad}]
            if data.draw(st.booleans())
            else [
                {"opcode": OP_TEXT, "payload": good, "fin": False},
                {"opcode": OP_CONT, "payload": bad + good},
            ]
        )
        stream.insert(boundary, frames)
    elif kind == "bad_close_code":
        code = data.draw(st.sampled_from(BAD_CLOSE_CODES))
        stream.insert(boundary, [{"opcode": OP_CLOSE, "payload": close_payload(code)}])
    elif kind == "orphan_continuation":
        stream.insert(boundary, [{"opcode": OP_CONT, "payload": data.draw(binaries)}])
    else:
        big = b"x" * data.draw(st.integers(1001, 2000))
        stream.insert(boundary, [{"opcode": OP_BINARY, "payload": big}])
    raw = encode_stream(data.draw, stream)
    parser = FrameParser(max_message_size=1000)
    with pytest.raises(ProtocolError) as info:
        for piece in pieces(raw, split_points(data.draw, len(raw))):
            parser.feed(piece)
    assert info.value.code == CORRUPTION_CODES.get(kind, 1002), kind


# ---------------------------------------------------------------------------------------------
# Interoperability with the websockets library


def test_websockets_client_frames_parse_here() -> None:
    from websockets.frames import Frame, Opcode

    frames = [
        Frame(Opcode.TEXT, "héllo 😀".encode()),
        Frame(Opcode.BINARY, os.urandom(70000)),
        Frame(Opcode.TEXT, b"frag", fin=False),
        Frame(Opcode.PING, b"are you there"),
        Frame(Opcode.CONT, "ment €".encode(), fin=True),
        Frame(Opcode.PONG, b""),
        Frame(Opcode.CLOSE, close_payload(1001, "going away")),
    ]
    stream = b"".join(frame.serialize(mask=True) for frame in frames)
    expected = [
        Message("héllo 😀"),
        Message(frames[1].data),
        Ping(b"are you there"),
        Message("fragment €"),
        Pong(b""),
        Close(1001, "going away"),
    ]
    assert FrameParser().feed(stream) == expected
    parser = FrameParser()
    events: list = []
    for i in range(0, len(stream), 777):
        events += parser.feed(stream[i : i + 777])
    assert events == expected


def _websockets_parse(data: bytes) -> list:
    from websockets.frames import Frame
    from websockets.streams import StreamReader

    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        gen = Frame.parse(reader.read_exact, mask=False, max_size=None)
        try:
            next(gen)
        except StopIteration as stop:
            frames.append(stop.value)
        else:  # pragma: no cover - the whole input was fed, so parse never waits
            raise AssertionError("websockets wanted more data")
    return frames


@pytest.mark.parametrize("length", [0, 5, 125, 126, 65535, 65536, 100_000])
def test_server_frames_parse_in_websockets(length: int) -> None:
    from websockets.frames import Close as WsClose
    from websockets.frames import Opcode

    text = ("ü" * length)[: max(0, length // 2)]
    data = os.urandom(length)
    stream = text_frame(text) + binary_frame(data)
    stream += encode_frame(OP_PING, b"hb") + encode_frame(OP_CLOSE, close_payload(1000, "done"))
    parsed = _websockets_parse(stream)
    assert [f.opcode for f in parsed] == [Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.CLOSE]
    assert parsed[0].data.decode() == text and parsed[0].fin
    assert bytes(parsed[1].data) == data
    assert parsed[2].data == b"hb"
    close = WsClose.parse(parsed[3].data)
    assert (close.code, close.reason) == (1000, "done")


@pytest.mark.parametrize("use_c", [True, False])
def test_large_payloads_with_and_without_the_c_mask(monkeypatch, use_c):
    import blaze_green.ws.frames as frames_mod

    if not use_c:
        monkeypatch.setattr(frames_mod, "_c_apply_mask", None)
    elif frames_mod._c_apply_mask is None:
        pytest.skip("websockets' C speedup is not installed")
    data = os.urandom(1 << 20)
    text = "héllo wörld ✓ " * 40000
    stream = encode_frame(OP_BINARY, data, mask=os.urandom(4)) + encode_frame(
        OP_TEXT, text.encode(), mask=os.urandom(4)
    )
    parser = FrameParser(max_message_size=None)
    events = []
    for i in range(0, len(stream), 65536):
        events += parser.feed(stream[i : i + 65536])
    assert events == [Message(data), Message(text)]
    assert type(events[0].data) is bytes
    assert apply_mask(apply_mask(data, b"abcd"), b"abcd") == data
