"""Strict HTTP/1.1 framing (RFC 9112), header limits, timeouts and bounded bodies, against a
real server process; each framing case is also fed to h11 to record what it does."""

import re
import socket
import time
from pathlib import Path

import h11
import pytest
from wsraw import RawWS, Rejected, handshake

from blaze_green.testing import ServerProcess, wait_until

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
    (
        "te-plus-cl",
        P + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
        "ok",
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


# -- timeouts ---------------------------------------------------------------------------------

SHORT = {
    "STRICT_HEADER_TIMEOUT": "1",
    "STRICT_KEEPALIVE_TIMEOUT": "1.5",
    "STRICT_BODY_TIMEOUT": "1",
}


def closed_within(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes `sock` (reading and discarding); fails past `limit`."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


@pytest.fixture(scope="module")
def short():
    with ServerProcess("strict_app:app", cwd=APPS, env=SHORT) as srv:
        yield srv


def test_silent_connection_is_closed_after_the_header_timeout(short):
    with socket.create_connection(("127.0.0.1", short.port), timeout=5) as sock:
        start = time.monotonic()
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed without an answer: nothing was asked
        assert 0.8 < time.monotonic() - start < 3


def test_slowloris_is_closed_at_the_deadline_not_reset_by_trickling(short):
    request = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    with socket.create_connection(("127.0.0.1", short.port), timeout=5) as sock:
        start = time.monotonic()
        sock.settimeout(0.3)
        data = b""
        for byte in request:  # one byte every 0.3 s: each is well within any idle timer
            try:
                sock.sendall(bytes([byte]))
                data += sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if data and not data.endswith(b"}"):
                continue
            if data:
                break
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert 0.8 < elapsed < 2.5, elapsed


def test_idle_keep_alive_connection_is_closed(short):
    with socket.create_connection(("127.0.0.1", short.port), timeout=5) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"hi"):
            data += sock.recv(4096)
        # within the keep-alive timeout the connection still serves
        time.sleep(0.5)
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"hi"):
            data += sock.recv(4096)
        elapsed = closed_within(sock, 5)
    assert 1.2 < elapsed < 3.5, elapsed


def test_stalled_body_is_408_and_close(short):
    with socket.create_connection(("127.0.0.1", short.port), timeout=5) as sock:
        sock.sendall(P + b"Content-Length: 100\r\n\r\nonly part of it")
        start = time.monotonic()
        response = read_all(sock, 5)
    assert status_of(response) == 408, response
    assert b"Connection: close" in response
    assert 0.8 < time.monotonic() - start < 3


def test_gunicorn_silent_connections_beyond_the_pool_do_not_stop_service(serve):
    srv = serve("strict_app:app", mode="gunicorn", env=SHORT, args=["--worker-connections", "50"])
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(60)]
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", srv.port), timeout=1) as sock:
                    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if read_all(sock, 1).endswith(b"hi"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "GET /hello never answered"
        # every silent connection was reaped by the header timeout
        for sock in silent:
            assert closed_within(sock, 10) < 10
    finally:
        for sock in silent:
            sock.close()


def get_hello_within(port: int, seconds: float) -> float:
    """Time until a fresh connection's GET /hello is answered (fails past `seconds`)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = read_all(sock, seconds)
    assert response.endswith(b"hi"), response
    return time.monotonic() - start


def test_gunicorn_full_pool_of_idle_connections_serves_a_new_request_at_once(serve):
    # header_timeout 30 s: what is measured is the pool reclaiming idle connections, not the
    # timeout reaping them.
    srv = serve(
        "strict_app:app",
        mode="gunicorn",
        env={"STRICT_HEADER_TIMEOUT": "30", "STRICT_KEEPALIVE_TIMEOUT": "30"},
        args=["--worker-connections", "20"],
    )
    # one connection served once and now idle in keep-alive, then 40 silent ones
    kept = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    kept.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert kept.recv(65536).endswith(b"hi")
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(40)]
    try:
        took = [get_hello_within(srv.port, 5) for _ in range(5)]
        print("GET /hello behind 40 silent connections, pool of 20:", took)
        assert max(took) < 3  # not after the 30 s header timeout
        # the oldest idle connections were the ones closed: the keep-alive one first
        assert closed_within(kept, 5) < 5
        closed = sum(closed_within(sock, 0.05) < 0.05 for sock in silent[:10])
        assert closed == 10
    finally:
        kept.close()
        for sock in silent:
            sock.close()


def test_gunicorn_full_pool_never_reclaims_a_request_in_progress(serve):
    srv = serve(
        "strict_app:app",
        mode="gunicorn",
        env={"STRICT_HEADER_TIMEOUT": "30"},
        args=["--worker-connections", "20"],
    )
    partial = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    partial.sendall(b"GET /hello HTTP/1.1\r\n")  # a request under way: not idle
    # make sure the server has read those bytes before the flood begins
    time_to_serve = get_hello_within(srv.port, 5)
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(40)]
    try:
        assert get_hello_within(srv.port, 5) < 3 + time_to_serve
        partial.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
        assert read_all(partial, 5).endswith(b"hi")  # it was kept and is answered
    finally:
        partial.close()
        for sock in silent:
            sock.close()


def test_gunicorn_max_connections_is_enforced_per_worker(serve):
    srv = serve("ws_app:app", mode="gunicorn", env={"MAX_CONN": "2"}, cwd=APPS)
    sessions = [RawWS.connect(srv.port) for _ in range(2)]
    try:
        third = handshake(srv.port)
        assert isinstance(third, Rejected) and third.status == 503, third
        sessions.pop().close()

        # the slot frees when the session ends (the server notices the close)
        def admitted() -> bool:
            ws = handshake(srv.port)
            if isinstance(ws, Rejected):
                return False
            sessions.append(ws)
            return True

        wait_until(admitted, 10, what="a slot to free")
    finally:
        for ws in sessions:
            ws.close()


def test_gunicorn_two_workers_each_hold_at_most_max_connections(serve):
    srv = serve("ws_app:app", mode="gunicorn", workers=2, env={"MAX_CONN": "1"}, cwd=APPS)
    sessions = []
    pids: list[int] = []
    try:
        for _ in range(20):
            ws = handshake(srv.port)
            if isinstance(ws, Rejected):
                assert ws.status == 503, ws
                continue
            sessions.append(ws)
            ws.send_text("!pid")
            pids.append(int(ws.recv_message()))
        # each worker admits one session of its own: never two in one worker, never three
        assert 1 <= len(pids) <= 2
        assert len(set(pids)) == len(pids), pids
    finally:
        for ws in sessions:
            ws.close()


# -- memory of maximal requests ---------------------------------------------------------------


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_maximal_header_blocks_cost_bounded_memory(serve):
    srv = serve("strict_app:app")
    pid = srv.proc.pid
    # the largest block accepted: 31 lines of ~1 KiB and a few bytes to spare (< 32 KiB)
    block = b"".join(b"X-Fill-%02d: %s\r\n" % (i, b"v" * 1000) for i in range(31))
    request = b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n" + block + b"\r\n"
    assert len(request) < 32768 + 100

    def park(n):
        socks = []
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            sock.sendall(request)  # headers complete, the declared body never comes
            socks.append(sock)
        return socks

    for sock in park(5):  # warm up (imports, first allocations)
        sock.close()
    exchange(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    before = rss_kib(pid)
    rounds = []
    for _ in range(2):
        socks = park(60)
        exchange(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        during = rss_kib(pid)
        for sock in socks:
            sock.close()
        # the server notices the closes (its body reads fail) and frees the requests
        time.sleep(0.5)
        exchange(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        rounds.append((during, rss_kib(pid)))
    print("RSS KiB before", before, "rounds (during, after)", rounds)
    for during, _after in rounds:
        assert during - before < 20 * 1024
    # what a round frees is reused by the next (the allocator keeps its arenas, so RSS does
    # not fall all the way back): no growth round over round, none after the connections end
    assert rounds[1][0] - rounds[0][0] < 2 * 1024
    for during, after in rounds:
        assert after <= during + 512
