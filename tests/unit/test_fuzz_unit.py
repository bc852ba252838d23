"""Property tests (hypothesis) of the two parsers a client feeds directly: the WebSocket frame
parser and the HTTP header block parser.

- FrameParser: any byte stream (random bytes, or frames valid and invalid, masked or not,
  compressed or not) gives the same events and the same error whether it is fed at once or
  split at arbitrary points; the only exception it raises is ProtocolError with a documented
  close code (1002, 1007, 1009).
- RequestHeaders: any header block either parses into token names and values without CR, LF or
  NUL, within the limits, or fails with 400 / 431 / 0 (connection ended): never an exception.

Fast by default (CI: a few seconds). For a longer run:
    BLAZE_FUZZ_EXAMPLES=20000 python -m pytest tests/unit/test_fuzz_unit.py -p no:timeout
"""

from __future__ import annotations

import io
import os
import re
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blaze_green.headers import MAX_HEADER_BYTES, MAX_HEADERS, RequestHeaders
from blaze_green.ws.frames import FrameParser, ProtocolError, encode_frame

EXAMPLES = int(os.environ.get("BLAZE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CODES = {1002, 1007, 1009}


def deflated(payload: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"", b"\x03\xe8", b"\x03\xe8bye", b"\xff\xfe", b"\xed\xa0\x80", b"\x00"]),
)


@st.composite
def frames(draw):
    """One frame, usually plausible (a data, continuation or control opcode), sometimes not."""
    opcode = draw(st.sampled_from([0, 0, 1, 1, 2, 2, 8, 9, 10, 3, 11]))
    payload = draw(payloads)
    rsv = draw(st.sampled_from([0, 0, 0, 4, 2]))
    if rsv == 4 and opcode in (1, 2) and draw(st.booleans()):
        payload = deflated(payload)
    fin = draw(st.booleans()) if opcode < 8 else draw(st.sampled_from([True, True, False]))
    mask = draw(st.sampled_from([b"\x00\x00\x00\x00", b"\x0f\xf0\xaa\x55", None, b"abcd"]))
    return encode_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv)


streams = st.one_of(
    st.binary(max_size=2000),
    st.lists(frames(), max_size=12).map(b"".join),
    st.tuples(st.lists(frames(), max_size=8).map(b"".join), st.binary(max_size=50)).map(
        lambda t: t[0] + t[1]
    ),
)


def run(stream: bytes, cuts: list[int], **options) -> tuple[list, tuple[int, str] | None]:
    """Feed `stream` cut at `cuts`: the events, and the error (code, reason) if any."""
    parser = FrameParser(**options)
    events: list = []
    last = 0
    try:
        for point in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
            events += parser.feed(stream[last:point])
            last = point
    except ProtocolError as exc:
        assert exc.code in CODES, exc
        return events + exc.events, (exc.code, exc.reason)
    return events, None


OPTIONS = st.fixed_dictionaries(
    {
        "max_message_size": st.sampled_from([None, 0, 10, 200, 1 << 20]),
        "deflate": st.booleans(),
        "max_fragments": st.sampled_from([None, 1, 3, 1024]),
    }
)


@FUZZ
@given(streams, st.lists(st.integers(min_value=0, max_value=5000), max_size=10), OPTIONS)
def test_frame_parser_any_split_gives_the_same_events_and_error(stream, cuts, options):
    whole = run(stream, [], **options)
    split = run(stream, cuts, **options)
    assert split[0] == whole[0]
    assert (split[1] and split[1][0]) == (whole[1] and whole[1][0])


@FUZZ
@given(streams, OPTIONS)
def test_frame_parser_byte_by_byte_matches_one_feed(stream, options):
    stream = stream[:400]
    whole = run(stream, [], **options)
    split = run(stream, list(range(len(stream))), **options)
    assert split[0] == whole[0]
    assert (split[1] and split[1][0]) == (whole[1] and whole[1][0])


@FUZZ
@given(streams, OPTIONS)
def test_a_dead_parser_keeps_failing_with_the_same_code(stream, options):
    parser = FrameParser(**options)
    try:
        parser.feed(stream)
    except ProtocolError as exc:
        try:
            parser.feed(b"\x81\x80abcd")
        except ProtocolError as again:
            assert again.code == exc.code
        else:
            raise AssertionError("a parser that failed accepted more input")


# -- the HTTP header block -----------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
names = st.one_of(
    st.sampled_from(["Host", "Content-Length", "Transfer-Encoding", "X-A", "cookie"]),
    st.text(alphabet=st.characters(max_codepoint=255), min_size=0, max_size=12),
)
values = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=255), max_size=40),
    st.sampled_from(["", " 5 ", "chunked", "a\x00b", "a\rb", "\t", "x" * 9000]),
)
line_ends = st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r", b""])


@st.composite
def header_blocks(draw):
    lines = []
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        sep = draw(st.sampled_from([b": ", b":", b" : ", b"", b":\t"]))
        name = draw(names).encode("latin-1")
        value = draw(values).encode("latin-1")
        lines.append(draw(st.sampled_from([b"", b" ", b"\t"])) + name + sep + value)
        lines.append(draw(line_ends))
    block = b"".join(lines)
    if draw(st.booleans()):
        block += b"\r\n"  # the blank line that ends the block
    if draw(st.booleans()):
        block += draw(st.binary(max_size=100))
    return block


def check_headers(block: bytes) -> None:
    headers = RequestHeaders(io.BytesIO(block))
    if headers.status:
        assert headers.code in (0, 400, 431), (headers.code, headers.status)
        return
    assert headers.code == 0
    items = headers.items()
    assert len(items) <= MAX_HEADERS
    assert sum(len(k) + len(v) for k, v in items) <= MAX_HEADER_BYTES
    for name, value in items:
        assert _TOKEN.match(name), name
        assert not set(value) & {"\r", "\n", "\0"}, value
        assert value == value.strip(" \t")
        assert headers.get(name) is not None
    for name in ("host", "content-length", "transfer-encoding"):
        assert len(headers.values(name)) == sum(1 for k, _ in items if k.lower() == name)


@FUZZ
@given(header_blocks())
def test_header_parser_never_raises_and_keeps_only_clean_fields(block):
    check_headers(block)


@FUZZ
@given(st.binary(max_size=3000))
def test_header_parser_on_random_bytes(block):
    check_headers(block)


def test_header_parser_limits_hold_for_maximal_blocks():
    many = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n"
    assert RequestHeaders(io.BytesIO(many)).code == 431
    big = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 8000) for i in range(5)) + b"\r\n"
    assert RequestHeaders(io.BytesIO(big)).code == 431
