"""RequestHeaders: the handler's own header parser, byte by byte (no server)."""

import io

import pytest

from blaze_green.headers import MAX_HEADER_BYTES, MAX_HEADER_LINE, MAX_HEADERS, RequestHeaders


def parse(block: bytes) -> RequestHeaders:
    return RequestHeaders(io.BytesIO(block), 0)


def test_fields_in_order_values_trimmed():
    h = parse(b"Host: a\r\nX-A:  b c \t\r\nContent-Type: text/plain\r\ncontent-length: 5\r\n\r\n")
    assert h.status == ""
    assert h.items() == [
        ("Host", "a"),
        ("X-A", "b c"),
        ("Content-Type", "text/plain"),
        ("content-length", "5"),
    ]
    assert list(h.headers) == [
        "Host: a\r\n",
        "X-A: b c\r\n",
        "Content-Type: text/plain\r\n",
        "content-length: 5\r\n",
    ]


def test_lookups_ignore_case_and_return_the_first():
    h = parse(b"X-Dup: 1\r\nx-dup: 2\r\nContent-Type: a/b\r\n\r\n")
    assert h.get("X-DUP") == "1"
    assert h.getheader("x-dup") == "1"
    assert h.get("missing", "d") == "d"
    assert "x-dup" in h and "nope" not in h
    assert h.typeheader == "a/b"


def test_delete_removes_every_occurrence():
    h = parse(b"Content-Length: 3\r\nA: 1\r\ncontent-length: 4\r\n\r\n")
    del h["CONTENT-LENGTH"]
    assert h.items() == [("A", "1")]


def test_stops_at_the_blank_line_and_leaves_the_body():
    stream = io.BytesIO(b"A: 1\n\nBODY")  # bare LF line ends are accepted, as http.client does
    h = RequestHeaders(stream, 0)
    assert h.items() == [("A", "1")] and h.status == ""
    assert stream.read() == b"BODY"


def test_empty_value_and_eof():
    assert parse(b"A:\r\n\r\n").items() == [("A", "")]
    for cut in (b"A: 1\r\n", b"", b"A: 1"):  # the connection closed before the blank line
        h = parse(cut)
        assert h.status and h.code == 0  # nothing to answer: the handler closes


@pytest.mark.parametrize(
    "line",
    [
        b"Host : a\r\n",  # space before the colon (RFC 9112 5.1: must be rejected)
        b" folded\r\n",  # obsolete line folding
        b"\tfolded\r\n",
        b"NoColon\r\n",
        b": no name\r\n",
        b"(x): y\r\n",  # not a token
        b"A: b\x00c\r\n",  # NUL in a value
        b"A: b\rc\r\n",  # bare CR in a value
        "Ä: 1\r\n".encode(),  # non-ASCII name
    ],
)
def test_bad_lines_set_status(line):
    h = parse(b"Host: x\r\n" + line + b"\r\n")
    assert h.status.startswith("Invalid header line")


def test_obs_text_in_values_is_kept_as_latin1():
    assert parse(b"A: caf\xe9\r\n\r\n").get("a") == "caf\xe9"


def test_limits_are_431():
    too_many = b"".join(b"H%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n"
    assert "More than" in parse(too_many).status and parse(too_many).code == 431
    assert parse(too_many[: too_many.index(b"H100")] + b"\r\n").status == ""
    longest = b"A: " + b"x" * (MAX_HEADER_LINE - 5) + b"\r\n"
    assert len(longest) == MAX_HEADER_LINE and parse(longest + b"\r\n").status == ""
    long_line = b"A: " + b"x" * MAX_HEADER_LINE + b"\r\n\r\n"
    assert parse(long_line).code == 431


def test_header_block_size_limit_is_431():
    line = b"X-Fill-%03d: " + b"v" * (MAX_HEADER_LINE - 20) + b"\r\n"
    lines = [line % i for i in range(MAX_HEADER_BYTES // len(line % 0) + 1)]
    fits = b"".join(lines[:-1])
    assert len(fits) <= MAX_HEADER_BYTES < len(fits) + len(lines[-1])
    assert parse(fits + b"\r\n").status == ""
    over = parse(fits + lines[-1] + b"\r\n")
    assert over.code == 431 and "32768" in over.status


def test_framing_fields_keep_every_value():
    h = parse(b"Host: a\r\nContent-Length: 5\r\nhost: b\r\nX: 1\r\nx: 2\r\n\r\n")
    assert h.values("HOST") == ["a", "b"]
    assert h.values("content-length") == ["5"]
    assert h.values("transfer-encoding") == []
    h.replace("Host", "c")
    assert h.values("host") == ["c"] and h.get("host") == "c"
    assert [k for k, _ in h.items()].count("Host") == 1
