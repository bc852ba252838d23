"""blaze_green.testing as users use it: the `blaze_client` fixture (the pytest plugin) with an
in-process App and with a "module:app" in a child process, the WebSocket test session, and
the plugin's registration."""

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from blaze_green import App, HTTPError, Json, delay, task
from blaze_green.testing import (
    AppServer,
    HTTPResponse,
    TestClient,
    WebSocketClosed,
    WebSocketRejected,
    wait_until,
)

APPS = Path(__file__).parent / "apps"


def make_app(**config):
    """A small app, built per test (its sessions and tasks belong to that test's server)."""
    app = App(**config)
    app.closed = []  # paths of ended sessions, appended on the server's thread
    app.ticks = []

    @app.get("/hello")
    def hello(req):
        return "hi"

    @app.get("/users/:id")
    def user(req, id: int):
        return {"id": id}

    @app.post("/echo-json")
    def echo_json(req):
        return {"got": req.json, "q": req.query.get("q")}

    @app.get("/teapot")
    def teapot(req):
        raise HTTPError(418, "short and stout")

    def on_message(ws, msg):
        if msg == "bye":
            ws.close(4000, "bye now")
        else:
            ws.send(msg)

    def check(req):
        if req.headers.get("X-Token") == "bad":
            raise HTTPError(403, "bad token")
        return req.headers.get("X-Token")

    app.ws(
        "/echo",
        on_message=on_message,
        on_close=lambda ws: app.closed.append(ws.path),
        before_open=check,
    )
    app.ws("/whoami", on_open=lambda ws: ws.send({"user": ws.user_data}), before_open=check)
    app.ws("/proto", on_open=lambda ws: ws.send("opened"), subprotocols=["v2", "v1"])
    app.ws("/ticks")

    @task
    def ticker(app):
        n = 0
        while True:
            n += 1
            app.ticks.append(n)
            app.broadcast("/ticks", Json({"n": n}))
            delay(0.02)

    app.spawn(ticker(app))  # held until the server starts, like a module-level app's tasks
    return app


def test_in_process_http(blaze_client):
    client = blaze_client(make_app())
    assert client.url.startswith("http://127.0.0.1:")
    r = client.get("/hello")
    assert (r.status_code, r.text) == (200, "hi")
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert client.get("/users/7").json() == {"id": 7}
    r = client.post("/echo-json", json={"a": [1, 2]}, params={"q": "x"})
    assert r.json() == {"got": {"a": [1, 2]}, "q": "x"}
    assert client.get("/teapot").json() == {"error": "short and stout", "status": 418}
    assert client.get("/nope").status_code == 404
    assert client.delete("/hello").status_code == 405


def test_in_process_http_without_requests(blaze_client):
    client = blaze_client(make_app(), use_requests=False)
    r = client.get("/hello")
    assert isinstance(r, HTTPResponse)
    assert (r.status_code, r.text, r.ok) == (200, "hi", True)
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert client.post("/echo-json", json=[1], params={"q": "y"}).json() == {"got": [1], "q": "y"}
    r = client.get("/teapot")
    assert (r.status_code, r.json()["error"]) == (418, "short and stout")


def test_in_process_websocket(blaze_client):
    app = make_app()
    client = blaze_client(app)
    with client.websocket_connect("/echo") as ws:
        ws.send("hello")
        assert ws.receive() == "hello"
        ws.send(b"\x00\xff")
        assert ws.receive_bytes() == b"\x00\xff"
        ws.send({"a": 1})
        assert ws.receive_json() == {"a": 1}
        with pytest.raises(TimeoutError):
            ws.receive(timeout=0.05)
    assert ws.close_code == 1000 and ws.closed
    wait_until(lambda: app.closed == ["/echo"], timeout=5, what="on_close")
    with pytest.raises(WebSocketClosed):
        ws.receive(timeout=1)
    with pytest.raises(WebSocketClosed):
        ws.send("too late")


def test_broadcast_from_the_test_thread(blaze_client):
    app = make_app()
    client = blaze_client(app)
    first, second = client.websocket_connect("/echo"), client.websocket_connect("/echo")
    wait_until(lambda: app.connections("/echo") == 2, timeout=5, what="two sessions")
    assert app.broadcast("/echo", {"news": 1}) == 2
    assert first.receive_json() == second.receive_json() == {"news": 1}
    assert app.broadcast("/echo", "skip one", exclude=app.sessions("/echo")[0]) == 1


def test_handshake_rejections_carry_status_and_body(blaze_client):
    client = blaze_client(make_app())
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/missing")
    assert info.value.status == 404
    assert info.value.json() == {"error": "no WebSocket route for /missing", "status": 404}
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/echo", headers={"X-Token": "bad"})
    assert (info.value.status, info.value.json()["error"]) == (403, "bad token")
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/echo", headers={"Origin": "http://evil.example"})
    assert info.value.status == 403
    assert client.get("/echo").status_code == 400  # a plain GET on a ws path


def test_headers_subprotocols_and_server_close(blaze_client):
    client = blaze_client(make_app())
    with client.websocket_connect("/whoami", headers={"X-Token": "alice"}) as ws:
        assert ws.receive_json() == {"user": "alice"}
    with client.websocket_connect("/proto", subprotocols=["v1", "v2"]) as ws:
        assert ws.subprotocol == "v1" and ws.receive() == "opened"
    ws = client.websocket_connect("/echo")
    ws.send("bye")
    assert ws.wait_closed(timeout=5) == 4000 and ws.close_reason == "bye now"


def test_pings_are_answered(blaze_client):
    app = make_app(ping_interval=0.05, ping_timeout=0.2)
    client = blaze_client(app)
    ws = client.websocket_connect("/echo")
    session = wait_until(lambda: app.sessions("/echo"), timeout=5)[0]
    # A session whose pings go unanswered is closed with 1011 after 0.25 s: this one lives on.
    with pytest.raises(TimeoutError):
        ws.wait_closed(timeout=0.8)
    assert not session.closed
    ws.send("still here")
    assert ws.receive() == "still here"


def test_background_tasks_run_and_restart_with_each_server(blaze_client):
    app = make_app()
    for _ in range(2):  # a module-level app served by one test after another
        client = blaze_client(app)
        with client.websocket_connect("/ticks") as ws:
            first = ws.receive_json()["n"]
            assert ws.receive_json()["n"] == first + 1
        client.stop()
        # Stopped: broadcasts from the test are local calls again, reaching nobody.
        assert app.broadcast("/ticks", "nobody") == 0
        assert app.ticks[:2] == [1, 2]  # the second server started the task afresh
        app.ticks.clear()


def test_stop_closes_open_sessions(blaze_client):
    app = make_app()
    client = blaze_client(app)
    ws = client.websocket_connect("/echo")
    started = time.monotonic()
    client.stop()
    assert time.monotonic() - started < 3
    assert ws.closed and app.closed == ["/echo"]
    client.stop()  # idempotent


def test_test_client_as_context_manager():
    app = make_app()
    with TestClient(app) as client:
        assert client.get("/hello").text == "hi"
        ws = client.websocket_connect("/echo")
        with pytest.raises(RuntimeError, match="already served"):
            TestClient(app).start()  # one hub per app: one in-process server at a time
    assert ws.closed
    with pytest.raises(TypeError):
        TestClient(42)


def test_app_server_reports_a_failed_start():
    app = make_app()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match="failed to start"):
            AppServer(app, port=taken.getsockname()[1]).start()
    with AppServer(app) as server:  # the app is free again
        assert requests.get(server.url + "/hello", timeout=5).text == "hi"


def test_subprocess_target(blaze_client):
    client = blaze_client("http_app:app", cwd=APPS)
    assert client.server.pid != os.getpid()
    assert client.get("/hello").text == "hi"
    assert client.get("/users/5").json() == {"id": 5, "type": "int"}
    with client.websocket_connect("/feed") as ws:
        ws.send("over the wire")
        assert ws.receive() == "over the wire"
        ws.send(bytes(range(256)) * 300)  # 76800 bytes: a 64-bit length, several reads
        assert ws.receive(timeout=5) == bytes(range(256)) * 300
    with pytest.raises(WebSocketRejected) as info:
        client.websocket_connect("/nope")
    assert info.value.status == 404


PROBE = """
import blaze_green.testing.pytest_plugin as plugin
from gevent import monkey


def test_fixture_from_the_plugin(blaze_client):
    from blaze_green import App

    app = App()
    app.get("/", lambda req: "ok")
    assert blaze_client(app).get("/").text == "ok"


def test_patching():
    print("PATCHED=%s" % monkey.is_module_patched("socket"))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """A user's pytest run in a child process: the plugin comes from the entry point alone."""
    path = tmp_path_factory.mktemp("probe")
    (path / "test_probe.py").write_text(textwrap.dedent(PROBE))
    env = {k: v for k, v in os.environ.items() if k != "BLAZE_GREEN_NO_PATCH"}  # as users run
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_probe.py"],
        cwd=path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_plugin_is_registered_through_the_entry_point(probe):
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "2 passed" in probe.stdout


def test_loading_the_plugin_does_not_patch_the_test_process(probe):
    assert "PATCHED=False" in probe.stdout, probe.stdout + probe.stderr
    assert "PatchWarning" not in probe.stdout + probe.stderr
