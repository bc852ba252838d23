"""Strict HTTP/1.1 framing (RFC 9112), header limits, timeouts and bounded bodies, against a
real server process; each framing case is also fed to h11 to record what it does."""

import re
import socket
import time
from pathlib import Path

import h11
import pytest

from blaze_green.testing import ServerProcess

APPS = Path(__file__).parent / "apps"

P = b"POST /size HTTP/1.1\r\nHost: x\r\n"

# (id, request bytes, our status, h11's status or "ok")
FRAMING = [
    ("cl-conflict", P + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, 400),
    ("cl-list-conflict", P + b"Content-Length: 5, 6\r\n\r\nhello!", 400, 400),
    ("cl-repeated-same", P + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 200, "ok"),
    ("cl-plus", P + b"Content-Length: +5\r\n\r\nhello", 400, 400),
    ("cl-underscore", P + b"Content-Length: 1_0\r\n\r\nhelloworld", 400, 400),
    ("cl-negative", P + b"Content-Length: -1\r\n\r\n", 400, 400),
    ("cl-ows", P + b"Content-Length:  5 \r\n\r\nhello", 200, "ok"),
    ("te-chunked-identity", P + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400, 501),
    ("te-gzip-chunked", P + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, 501),
    ("te-identity", P + b"Transfer-Encoding: identity\r\n\r\n", 400, 501),
    (
        "te-chunked-twice",
        P + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        501,
    ),
    ("bad-chunk-size", P + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400, 400),
    (
        "chunk-missing-crlf",
        P + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        400,
        400,
    ),
    ("host-missing", b"GET /hello HTTP/1.1\r\n\r\n", 400, 400),
    ("host-repeated", b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 400),
    ("http10-no-host", b"GET /hello HTTP/1.0\r\n\r\n", 200, "ok"),
    ("absolute-form", b"GET http://h.example/where?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", 200, "ok"),
    ("http09", b"GET /hello\r\n\r\n", 400, 400),
    ("control-in-method", b"G\x01T /hello HTTP/1.1\r\nHost: x\r\n\r\n", 400, 400),
    ("http2-line", b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505, "ok"),
]


def read_all(sock: socket.socket, limit: float = 5.0) -> bytes:
    """Everything until the server closes (or `limit` seconds pass)."""
    sock.settimeout(limit)
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def exchange(server, request: bytes, limit: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        return read_all(sock, limit)


def status_of(response: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert match, response
    return int(match[1])


@pytest.fixture(scope="module")
def server():
    with ServerProcess("strict_app:app", cwd=APPS, env={"STRICT_KEEPALIVE_TIMEOUT": "2"}) as srv:
        yield srv


@pytest.mark.parametrize("case,request_bytes,ours,_h11", FRAMING, ids=[c[0] for c in FRAMING])
def test_framing(server, case, request_bytes, ours, _h11):
    # a second request follows each one: after a refusal it must never be served
    follow = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    response = exchange(server, request_bytes + follow)
    assert status_of(response) == ours, response
    if ours >= 400:
        head = response.split(b"\r\n\r\n", 1)[0]
        assert b"Connection: close" in head, response
        assert b"HTTP/1.1 200" not in response, response  # nothing after it was served
        assert b'"status":%d' % ours in response  # our JSON body, not a traceback or plain text
    if case == "absolute-form":
        assert b'"path":"/where"' in response and b'"host":"h.example"' in response
        assert b'"query":"1"' in response


@pytest.mark.parametrize("case,request_bytes,_ours,theirs", FRAMING, ids=[c[0] for c in FRAMING])
def test_framing_h11(case, request_bytes, _ours, theirs):
    """What h11 (0.16) does with the same bytes, for the table in docs/security.md."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request_bytes)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or isinstance(event, h11.EndOfMessage):
                break
    except h11.RemoteProtocolError as exc:
        assert exc.error_status_hint == theirs, exc
        return
    assert theirs == "ok"


def test_framing_errors_are_logged_once_per_client_without_traceback(serve):
    srv = serve("strict_app:app")
    for _ in range(5):
        assert status_of(exchange(srv, P + b"Content-Length: +5\r\n\r\nhello")) == 400
        assert status_of(exchange(srv, P + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")) == 400
    srv.wait_for_output(r"WARNING blaze_green.http: client 127\.0\.0\.1: invalid Content-Length")
    assert status_of(exchange(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
    assert len(re.findall(r"client 127\.0\.0\.1", srv.output)) == 1, srv.output
    assert "Traceback" not in srv.output


def test_request_line_too_long_is_414(server):
    response = exchange(server, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) == 414


def test_header_block_over_32k_is_431_and_close(server):
    fields = b"".join(b"X-Fill-%02d: %s\r\n" % (i, b"v" * 8000) for i in range(5))
    response = exchange(server, b"GET /hello HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert status_of(response) == 431
    assert b"Connection: close" in response
    line = b"X-Long: " + b"v" * 9000 + b"\r\n"
    assert (
        status_of(exchange(server, b"GET /hello HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n")) == 431
    )


def test_chunked_body_to_a_handler_that_ignores_it_is_not_drained_past_max_body_size(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"1000\r\n" + b"z" * 4096 + b"\r\n"
        sock.sendall(chunk * 2)  # 8 KiB > max_body_size (4 KiB); the body goes on and on
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 ")
        # the server stops reading and closes instead of draining the rest
        closed_at = time.monotonic() + 5
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while time.monotonic() < closed_at:
                sock.sendall(chunk * 16)
                sock.settimeout(0.01)
                try:
                    if sock.recv(65536) == b"":
                        raise ConnectionResetError
                except TimeoutError:
                    pass


def test_small_ignored_body_is_drained_and_keep_alive_goes_on(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = b""
        while data.count(b"HTTP/1.1 200 ") < 3 or not data.endswith(b"hi"):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk


@pytest.mark.parametrize("value", ["a%00b", "a%0d%0aX-Injected:%20yes", "a%0ab"])
def test_control_bytes_from_a_path_parameter_never_reach_the_wire(server, value):
    response = exchange(server, f"GET /echo-header/{value} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status_of(response) == 500
    assert b"X-Echo" not in response and b"X-Injected" not in response
    assert response.endswith(b'{"error":"internal server error","status":500}')


def test_non_latin1_header_value_is_our_json_500(server):
    response = exchange(server, b"GET /latin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) == 500
    assert b"application/json" in response
    assert response.endswith(b'{"error":"internal server error","status":500}')
