"""HTTP routes, return conventions and error statuses, against a real `blaze-green run` process."""

import datetime
import email.utils
import socket
from pathlib import Path

import pytest
import requests

from blaze_green.testing import ServerProcess

APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="module")
def server():
    with ServerProcess("http_app:app", cwd=APPS) as srv:
        yield srv


def get(server, path, **kw):
    return requests.get(server.url + path, timeout=5, **kw)


def test_str_is_html(server):
    r = get(server, "/hello")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Length"] == "2"
    assert r.text == "hi"


def test_unicode_body_length_counts_bytes(server):
    r = get(server, "/unicode")
    assert r.content.decode("utf-8") == "héllo ✓"
    assert int(r.headers["Content-Length"]) == len("héllo ✓".encode())


def test_bytes_are_octets(server):
    r = get(server, "/bytes")
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.content == b"\x00\x01\x02"


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/dict", {"a": 1, "b": [1, 2]}),
        ("/list", [{"type": "t", "value": 1.5}, {"type": "u", "value": 2.0}]),
        ("/json", [1, "two", None]),
        ("/model", {"type": "ticker", "value": 89500.5}),
        ("/point", {"x": 1, "y": 2}),
    ],
)
def test_json_values(server, path, expected):
    r = get(server, path)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == expected


def test_tuples(server):
    r = get(server, "/tuple2")
    assert (r.status_code, r.text) == (201, "created")
    r = get(server, "/tuple3")
    assert r.status_code == 202
    assert r.headers["X-Extra"] == "yes"
    assert r.json() == {"ok": True}


def test_response_content_type_wins(server):
    r = get(server, "/response")
    assert r.headers["Content-Type"] == "text/csv"
    assert r.headers["X-A"] == "1"
    assert r.text == "<p>x</p>"
    r = get(server, "/response-header-type")
    assert r.headers["Content-Type"] == "image/png"
    assert r.content == b"abc"


def test_none_is_204(server):
    r = get(server, "/none")
    assert r.status_code == 204
    assert r.content == b""


def test_int_and_float_segments(server):
    assert get(server, "/users/42").json() == {"id": 42, "type": "int"}
    assert get(server, "/price/2.5").json() == {"value": 2.5}
    assert get(server, "/files/report.txt/raw").json() == {"name": "report.txt"}


@pytest.mark.parametrize("path", ["/users/abc", "/users/", "/price/x", "/nope", "/users/1/2"])
def test_unknown_or_unconvertible_is_404(server, path):
    r = get(server, path)
    assert r.status_code == 404
    assert r.json()["status"] == 404


def test_static_route_beats_pattern(server):
    assert get(server, "/static/path").text == "static"
    assert get(server, "/static/else").text == "dynamic"


def test_405_lists_allowed_methods(server):
    r = requests.post(server.url + "/hello", timeout=5)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"
    r = requests.post(server.url + "/item/1", timeout=5)
    assert r.status_code == 405
    assert set(r.headers["Allow"].split(", ")) == {"PUT", "PATCH", "DELETE"}


def test_every_method(server):
    assert requests.put(server.url + "/item/3", timeout=5).json() == {"put": 3}
    assert requests.patch(server.url + "/item/4", timeout=5).json() == {"patch": 4}
    assert requests.delete(server.url + "/item/5", timeout=5).json() == {"deleted": 5}
    assert requests.post(server.url + "/multi", timeout=5).json() == {"method": "POST"}
    assert get(server, "/multi").json() == {"method": "GET"}


def test_head_answers_for_get_routes(server):
    r = requests.head(server.url + "/dict", timeout=5)
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["Content-Length"]) == len(get(server, "/dict").content)


def test_query_is_not_part_of_routing(server):
    r = get(server, "/query?q=1&t=a&t=b")
    assert r.json() == {"q": "1", "all": ["a", "b"], "path": "/query"}
    assert get(server, "/hello?x=1").text == "hi"


def test_headers_case_insensitive(server):
    r = get(server, "/headers", headers={"X-Custom": "v", "User-Agent": "ua/1"})
    body = r.json()
    assert body["ua"] == "ua/1"
    assert body["x"] == "v"
    assert body["has"] is True
    assert body["remote"] == "127.0.0.1"
    assert body["method"] == "GET"


def test_json_body(server):
    r = requests.post(server.url + "/echo-json", json={"k": [1, 2]}, timeout=5)
    assert r.json() == {"got": {"k": [1, 2]}}


@pytest.mark.parametrize("body", [b"{bad", b"", b"[1,"])
def test_malformed_json_is_400(server, body):
    r = requests.post(server.url + "/echo-json", data=body, timeout=5)
    assert r.status_code == 400
    assert r.json()["status"] == 400
    assert "JSON" in r.json()["error"]


def test_body_model_validates(server):
    r = requests.post(server.url + "/updates", json={"type": "t", "value": 1.5}, timeout=5)
    assert r.status_code == 201
    assert r.json() == {"type": "t", "value": 1.5, "cls": "Update"}
    r = requests.post(server.url + "/updates", json={"type": "t", "value": "x"}, timeout=5)
    assert r.status_code == 400
    assert r.json() == {"error": {"value": ["Not a valid number."]}, "status": 400}
    r = requests.post(server.url + "/updates", json={"type": "t"}, timeout=5)
    assert r.status_code == 400
    assert r.json()["error"] == {"value": ["Missing data for required field."]}
    r = requests.post(server.url + "/updates", json=[1], timeout=5)
    assert r.status_code == 400


def test_body_plain_classes(server):
    r = requests.post(server.url + "/points", json={"x": 1, "y": 2}, timeout=5)
    assert r.json() == {"x": 1, "y": 2, "cls": "Point"}
    r = requests.post(server.url + "/bare", json={"name": "n"}, timeout=5)
    assert r.json() == {"name": "n", "cls": "Bare"}


def test_http_error(server):
    r = get(server, "/teapot")
    assert r.status_code == 418
    assert r.json() == {"error": "short and stout", "status": 418}


def test_uncaught_exception_is_500_logged_and_server_goes_on(server):
    r = get(server, "/boom")
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error", "status": 500}
    server.wait_for_output(r"Traceback[\s\S]*RuntimeError: kaboom in handler")
    assert get(server, "/hello").text == "hi"
    r = get(server, "/bad-return")
    assert r.status_code == 500
    server.wait_for_output(r"TypeError: a handler returned object")


def test_413_over_max_body_size(server):
    r = requests.post(server.url + "/size", data=b"x" * 1024, timeout=5)
    assert r.json() == {"size": 1024}
    r = requests.post(server.url + "/size", data=b"x" * 1025, timeout=5)
    assert r.status_code == 413
    assert r.json()["status"] == 413

    def chunks():
        for _ in range(5):
            yield b"y" * 400

    r = requests.post(server.url + "/size", data=chunks(), timeout=5)  # chunked, no length
    assert r.status_code == 413


def test_plain_http_to_ws_path_is_400(server):
    r = get(server, "/feed")
    assert r.status_code == 400
    assert "WebSocket" in r.json()["error"]


def test_response_in_one_write_with_nodelay(server):
    with requests.Session() as s:  # one keep-alive connection
        before = s.get(server.url + "/stats/writes", timeout=5).json()["writes"]
        assert s.get(server.url + "/dict", timeout=5).status_code == 200
        after = s.get(server.url + "/stats/writes", timeout=5).json()["writes"]
        # the first stats response and /dict: one write each (headers and body together)
        assert after - before == 2
        nodelay = s.get(server.url + "/stats/nodelay", timeout=5).json()["nodelay"]
    assert nodelay and all(v == 1 for v in nodelay)


def test_keep_alive_pipelined_requests(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        data = b""
        while data.count(b"hi") < 3:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 3


def raw_request(server, request: bytes) -> bytes:
    """Send bytes on a fresh connection; read until the server closes or one response is in."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep and b"Content-Length" in head:
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    return data
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize(
    "bad",
    [
        b"X-Custom : v\r\n",  # space before the colon
        b"X-Custom: v\r\n folded\r\n",  # obsolete line folding
        b"NoColon\r\n",
        b"X-Custom: a\x00b\r\n",
    ],
)
def test_malformed_header_lines_are_400_and_close(server, bad):
    response = raw_request(server, b"GET /hello HTTP/1.1\r\nHost: x\r\n" + bad + b"\r\n")
    assert response.startswith(b"HTTP/1.1 400 "), response
    assert b"Connection: close" in response


def test_too_many_headers_is_431(server):
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    response = raw_request(server, b"GET /hello HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert response.startswith(b"HTTP/1.1 431 "), response
    assert b"Connection: close" in response


def test_repeated_headers_are_joined_in_order(server):
    response = raw_request(
        server, b"GET /header/x-multi HTTP/1.1\r\nHost: x\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b'{"value":"1,2"}')


def test_chunked_body_with_content_length_is_400_and_close(server):
    body = b'{"k": [1, 2]}'
    request = (
        b"POST /echo-json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 999\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\n\r\n"
    )
    # RFC 9112 6.1 would allow processing it as chunked; a proxy in front may have framed it by
    # the length, so it is refused (as nginx does), and nothing behind it is read
    response = raw_request(server, request + b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 "), response
    assert b"Connection: close\r\n" in response
    assert b"Transfer-Encoding and Content-Length together" in response
    assert b"HTTP/1.1 200" not in response


def test_date_header_is_current_http_date(server):
    r = get(server, "/hello")
    sent = email.utils.parsedate_to_datetime(r.headers["Date"])
    assert r.headers["Date"].endswith(" GMT")
    assert abs((sent - datetime.datetime.now(datetime.UTC)).total_seconds()) < 5


def test_response_larger_than_the_socket_buffer_arrives_whole(server):
    # 16 MiB cannot leave in one send: the rest goes through gevent's sendall, on the same
    # keep-alive connection, and the next request still works.
    with requests.Session() as s:
        r = s.get(server.url + "/big/16777216", timeout=30)
        assert r.status_code == 200
        assert len(r.content) == 16 << 20
        assert r.content == bytes(range(256)) * (1 << 16)
        writes_before = s.get(server.url + "/stats/writes", timeout=5).json()["writes"]
        assert s.get(server.url + "/hello", timeout=5).text == "hi"
        writes_after = s.get(server.url + "/stats/writes", timeout=5).json()["writes"]
        assert writes_after - writes_before == 2
