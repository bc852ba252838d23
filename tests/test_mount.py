"""app.mount(prefix, wsgi_app): real Flask and Django apps (and plain WSGI apps) served on the
same port as blaze_green's own routes and WebSockets, under `blaze-green run` and gunicorn with
our worker. Apps: tests/apps/mount_app.py (Flask at "/" and "/legacy", plain WSGI at "/raw"),
tests/apps/mount_django_app.py (Django at "/dj")."""

import hashlib
import json
import socket
import time
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect

from blaze_green.testing import ServerProcess, wait_until
from blaze_green.testing.websocket import WebSocketRejected, open_websocket

APPS = Path(__file__).parent / "apps"

MODES = ["run", "gunicorn"]
BIG_SIZE = 3 * 1024 * 1024 + 123  # mount_flask.BIG_SIZE


def big_bytes():
    block = hashlib.sha256(b"blaze").digest() * 2048  # as mount_flask.big_file writes it
    return (block * (BIG_SIZE // len(block) + 1))[:BIG_SIZE]


@pytest.fixture(scope="module", params=MODES)
def flask_server(request):
    server = ServerProcess("mount_app:app", mode=request.param, cwd=APPS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=MODES)
def django_server(request):
    server = ServerProcess("mount_django_app:app", mode=request.param, cwd=APPS).start()
    yield server
    server.stop()


def get(server, path, **kwargs):
    kwargs.setdefault("timeout", 10)
    return requests.get(server.url + path, **kwargs)


def raw_exchange(server, request_bytes, until, timeout=10.0):
    """Send raw bytes; read until `until(data)` is true or the server closes. Returns the data."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request_bytes)
        data = b""
        deadline = time.monotonic() + timeout
        while not until(data) and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


# -- routing ---------------------------------------------------------------------------------


def test_blaze_routes_win_and_the_rest_goes_to_flask(flask_server):
    assert get(flask_server, "/api/hello").text == "blaze"  # Flask has /api/hello too
    index = get(flask_server, "/")
    assert index.status_code == 200 and index.text == "flask root index"
    # A method blaze_green does not route on that path goes to the mounted app as well.
    assert requests.post(flask_server.url + "/api/only-post", timeout=10).text == "blaze post"
    not_here = get(flask_server, "/api/only-post")
    assert not_here.status_code == 404 and "Not Found" in not_here.text  # Flask's own 404
    # A plain GET on our WebSocket path stays ours: the 400 that says how to connect.
    feed = get(flask_server, "/feed")
    assert feed.status_code == 400 and "WebSocket endpoint" in feed.json()["error"]


def test_longest_prefix_wins_on_segment_boundaries(flask_server):
    assert get(flask_server, "/legacy").text == "flask legacy index"  # PATH_INFO ""
    assert get(flask_server, "/legacy/").text == "flask legacy index"
    assert get(flask_server, "/legacyx").text == "flask root legacyx"  # not under /legacy
    assert get(flask_server, "/raw/environ").json()["SCRIPT_NAME"] == "/raw"


def test_prefix_mount_splits_script_name_and_url_for_includes_it(flask_server):
    where = get(flask_server, "/legacy/where?x=1").json()
    assert where["script_name"] == "/legacy" and where["path_info"] == "/where"
    assert where["url"] == "/legacy/page/x"
    assert where["external"] == f"http://127.0.0.1:{flask_server.port}/legacy/page/x"
    root = get(flask_server, "/where").json()
    assert root["script_name"] == "" and root["url"] == "/page/x"
    page = get(flask_server, "/legacy/page/bob").text
    assert "Hello, bob!" in page and 'href="/legacy/page/next"' in page


def test_upgrade_to_a_mounted_path_is_refused_with_a_message(flask_server):
    with pytest.raises(WebSocketRejected) as info:
        open_websocket("127.0.0.1", flask_server.port, "/socket.io/")
    assert info.value.status == 404
    message = info.value.json()["error"]
    assert "mounted at '/'" in message and "app.ws(" in message


# -- Flask -----------------------------------------------------------------------------------


def test_flask_jinja_template(flask_server):
    r = get(flask_server, "/page/ann")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "<h1>Hello, ann!</h1>" in r.text and 'href="/page/next"' in r.text


def test_flask_session_cookie_survives_two_requests(flask_server):
    with requests.Session() as browser:
        r = browser.post(flask_server.url + "/session", json={"user": "ann"}, timeout=10)
        assert r.json() == {"ok": True} and "session" in r.cookies
        assert browser.get(flask_server.url + "/session", timeout=10).json() == {"user": "ann"}
    assert get(flask_server, "/session").json() == {"user": None}  # no cookie, no session


def test_flask_streamed_response_arrives_before_the_generator_ends(flask_server):
    with socket.create_connection(("127.0.0.1", flask_server.port), timeout=10) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while b"first chunk\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed before the first chunk: {data!r}"
            data += chunk
        # The generator is blocked until /stream/release: nothing more came, the rest is open.
        head = data.split(b"\r\n\r\n", 1)[0].lower()
        assert b"transfer-encoding: chunked" in head and b"content-length" not in head
        assert b"last chunk" not in data
        released = requests.post(flask_server.url + "/stream/release", timeout=10)
        assert released.text == "released"
        while not data.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, f"closed before the end: {data!r}"
            data += chunk
        assert b"last chunk\n" in data and b"timeout" not in data


def test_flask_send_file_large_file_through_the_file_wrapper(flask_server):
    r = get(flask_server, "/big")
    assert r.status_code == 200
    assert r.headers["X-File-Wrapper"] == "blaze_green.mount.FileWrapper"
    assert int(r.headers["Content-Length"]) == BIG_SIZE == len(r.content)
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(big_bytes()).digest()
    part = get(flask_server, "/big", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == big_bytes()[100:200]


def test_flask_view_broadcasts_to_our_feed_websocket(flask_server):
    with connect(flask_server.ws_url("/feed"), open_timeout=10) as ws:
        ws.send("ready?")
        assert ws.recv(timeout=10) == "echo ready?"  # registered: its echo came back
        r = requests.post(flask_server.url + "/publish", data={"item": "x1"}, timeout=10)
        assert r.json() == {"delivered": 1}
        assert json.loads(ws.recv(timeout=10)) == {"from": "flask", "item": "x1"}


def test_flask_error_is_flasks_500_and_the_server_goes_on(flask_server):
    r = get(flask_server, "/boom")
    assert r.status_code == 500 and "Internal Server Error" in r.text
    assert get(flask_server, "/").status_code == 200


def test_head_sends_headers_without_body(flask_server):
    # Pipelined on one connection: a body after a HEAD answer would corrupt the next one.
    heads = ["/big", "/raw/lazy", "/raw/write", "/raw/exc-before", "/api/hello"]
    request = b"".join(f"HEAD {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() for p in heads)
    request += b"GET /api/hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    data = raw_exchange(flask_server, request, lambda d: d.endswith(b"\r\n\r\nblaze"))
    responses = data.split(b"HTTP/1.1 ")[1:]
    assert [r[:3] for r in responses] == [b"200", b"201", b"200", b"503", b"200", b"200"], data
    assert all(r.endswith(b"\r\n\r\n") for r in responses[:5]), data
    assert f"Content-Length: {BIG_SIZE}\r\n".encode() in responses[0]  # Flask's, as for GET
    assert b"Transfer-Encoding: chunked\r\n" in responses[1]  # a generator: length unknown
    assert b"Content-Length: 5\r\n" in responses[3]  # a list: summed, as for GET
    assert b"Content-Length: 5\r\n" in responses[4]  # our own route, HEAD as GET
    assert responses[5].endswith(b"\r\n\r\nblaze")


# -- PEP 3333 details (plain WSGI app at /raw) -----------------------------------------------


def test_environ_of_a_mounted_app(flask_server):
    env = get(flask_server, "/raw/environ?q=1").json()
    keys = set(env.pop("keys"))
    assert keys >= {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REMOTE_ADDR",
        "wsgi.version",
        "wsgi.url_scheme",
        "wsgi.input",
        "wsgi.errors",
        "wsgi.multithread",
        "wsgi.multiprocess",
        "wsgi.run_once",
        "wsgi.input_terminated",
        "wsgi.file_wrapper",
    }
    assert "blaze_green.upgrade" not in keys
    assert env == {
        "SCRIPT_NAME": "/raw",
        "PATH_INFO": "/environ",
        "QUERY_STRING": "q=1",
        "REQUEST_METHOD": "GET",
        "CONTENT_LENGTH": None,
        "file_wrapper": "FileWrapper",
        "input_terminated": True,
    }


def test_mounted_requests_are_counted_per_mount(flask_server):
    assert get(flask_server, "/raw/lazy").status_code == 201
    assert get(flask_server, "/legacy/where").status_code == 200

    def counted():
        rows = get(flask_server, "/api/stats").json()
        seen = {(r["method"], r["route"], r["status"]) for r in rows}
        return {("GET", "mount:/raw", 201), ("GET", "mount:/legacy", 200)} <= seen

    wait_until(counted, 10)


def test_close_is_called_after_the_response(flask_server):
    r = get(flask_server, "/raw/closing?after-response")
    assert r.text == "abc"
    wait_until(lambda: "after-response" in get(flask_server, "/raw/closed").json(), 10)


def test_close_is_called_when_the_client_goes_away(flask_server):
    with socket.create_connection(("127.0.0.1", flask_server.port), timeout=10) as sock:
        sock.sendall(b"GET /raw/endless HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = 0
        while received < 256 * 1024:  # streaming has begun
            chunk = sock.recv(65536)
            assert chunk
            received += len(chunk)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # closed with a reset: the server's next write fails, and it must close the iterable
    wait_until(lambda: "endless" in get(flask_server, "/raw/closed").json(), 10)


def test_file_wrapper_of_a_file_from_its_position(flask_server):
    source = (APPS / "mount_raw.py").read_bytes()
    assert get(flask_server, "/raw/file").content == source
    assert get(flask_server, "/raw/file?100").content == source[100:]  # sent from f.tell()
    memory = get(flask_server, "/raw/file-memory")  # no descriptor: iterated instead
    assert memory.content == b"in memory " * 1000


def test_file_wrapper_shorter_than_its_content_length_is_cut_and_closed(flask_server):
    source = (APPS / "mount_raw.py").read_bytes()
    request = b"GET /raw/file-short HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    data = raw_exchange(flask_server, request, lambda d: False)  # until the server closes
    head, _, body = data.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(source) + 100}".encode() in head
    assert body == source  # all there was, then the connection closed (no hang)


def test_write_callable_then_iterable(flask_server):
    r = get(flask_server, "/raw/write")
    assert r.text == "written then returned" and r.headers["Transfer-Encoding"] == "chunked"


def test_generator_app_calls_start_response_late(flask_server):
    r = get(flask_server, "/raw/lazy")
    assert r.status_code == 201 and r.text == "lazy body"


def test_exc_info_before_headers_replaces_the_response(flask_server):
    r = get(flask_server, "/raw/exc-before")
    assert r.status_code == 503 and r.text == "sorry"


def test_exc_info_after_headers_cuts_the_response(flask_server):
    data = raw_exchange(
        flask_server, b"GET /raw/exc-after HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", lambda d: False
    )
    assert data.startswith(b"HTTP/1.1 200") and b"partial" in data
    assert not data.endswith(b"0\r\n\r\n") and b"never" not in data  # cut, then closed
    assert get(flask_server, "/api/hello").text == "blaze"


def test_an_exception_in_a_mounted_app_is_a_500(flask_server):
    r = get(flask_server, "/raw/raise")
    assert r.status_code == 500 and r.json() == {"error": "internal server error", "status": 500}
    flask_server.wait_for_output("RuntimeError: raw app failed")


def test_request_bodies_within_max_body_size(flask_server):
    body = bytes(range(256)) * 200  # 51,200 bytes; max_body_size is 64 KiB
    digest = hashlib.sha256(body).hexdigest()
    r = requests.post(flask_server.url + "/echo", data=body, timeout=10)
    assert r.json() == {"size": len(body), "sha256": digest}
    chunked = requests.post(flask_server.url + "/echo", data=iter([body[:1000], body[1000:]]))
    assert chunked.json() == {"size": len(body), "sha256": digest}
    lines = b"line\n" * 1000
    r = requests.post(flask_server.url + "/raw/body-lines", data=iter([lines]), timeout=10)
    assert r.json() == {"lines": 1000, "size": len(lines)}


@pytest.mark.parametrize("path", ["/raw/body", "/echo"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_bodies_over_max_body_size_get_413(flask_server, path, framing):
    body = b"x" * (64 * 1024 + 1)
    data = body if framing == "content-length" else iter([body[:30000], body[30000:]])
    r = requests.post(flask_server.url + path, data=data, timeout=10)
    assert r.status_code == 413, r.text
    assert r.headers["Connection"] == "close"
    assert "limit" in r.json()["error"] and "65536" in r.json()["error"]
    assert get(flask_server, "/api/hello").text == "blaze"


# -- Django ----------------------------------------------------------------------------------


def test_django_view_with_script_name(django_server):
    r = get(django_server, "/dj/hello/")
    assert r.json() == {
        "hello": "django",
        "script_name": "/dj",
        "path_info": "/hello/",
        "path": "/dj/hello/",
        "reverse": "/dj/hello/",
    }
    slash = get(django_server, "/dj/hello", allow_redirects=False)  # APPEND_SLASH
    assert slash.status_code == 301 and slash.headers["Location"] == "/dj/hello/"
    assert get(django_server, "/api/hello").text == "blaze"
    assert get(django_server, "/elsewhere").status_code == 404  # nothing mounted at "/"


def test_django_admin_login_page_with_its_csrf_cookie(django_server):
    with requests.Session() as browser:
        r = browser.get(django_server.url + "/dj/admin/login/", timeout=10)
        assert r.status_code == 200 and "Log in | Django site admin" in r.text
        token = browser.cookies.get("csrftoken")
        assert token, r.headers
        assert 'name="csrfmiddlewaretoken"' in r.text
        assert 'href="/dj/static/admin/css/base.css"' in r.text  # SCRIPT_NAME in static URLs
        form_token = r.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
        # The cookie came back with the form: CSRF passes, and the empty form is re-rendered
        # with its errors (no user is looked up, so no database table is needed).
        post = browser.post(
            django_server.url + "/dj/admin/login/",
            data={"csrfmiddlewaretoken": form_token, "username": "", "password": ""},
            timeout=10,
        )
        assert post.status_code == 200 and "This field is required." in post.text
        assert browser.cookies.get("csrftoken") == token
    # Without the cookie, Django's CSRF check refuses the same form.
    refused = requests.post(
        django_server.url + "/dj/admin/login/",
        data={"csrfmiddlewaretoken": form_token, "username": "", "password": ""},
        timeout=10,
    )
    assert refused.status_code == 403 and "CSRF" in refused.text


def test_django_view_broadcasts_to_our_feed_websocket(django_server):
    with connect(django_server.ws_url("/feed"), open_timeout=10) as ws:
        # /feed has no on_message here: poll the count until the session is registered.
        def delivered():
            r = requests.post(django_server.url + "/dj/publish/", data={"item": "d"}, timeout=10)
            return r.json()["delivered"] == 1

        wait_until(delivered, 10)
        assert json.loads(ws.recv(timeout=10)) == {"from": "django", "item": "d"}
