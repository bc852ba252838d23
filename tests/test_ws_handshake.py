"""The WebSocket opening handshake against a real server process: every rejection is decided
before the 101 (status, body, headers), origins, before_open, limits, subprotocols."""

from __future__ import annotations

import json

import pytest
import requests
import websocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from wsraw import RawWS, Rejected, handshake, handshake_request

from blaze_green.testing import wait_until


def echo_once(server, path: str = "/echo", **kwargs) -> None:
    with connect(server.ws_url(path), **kwargs) as ws:
        ws.send("ping?")
        assert ws.recv(timeout=5) == "ping?"


def rejected(port: int, path: str = "/echo", headers=None, method: str = "GET") -> Rejected:
    result = handshake(port, path, headers, method)
    if isinstance(result, RawWS):
        result.close()
        raise AssertionError(f"the handshake to {path} with {headers} was accepted")
    return result


def error_body(rej: Rejected) -> dict:
    assert rej.headers["content-type"].startswith("application/json")
    return json.loads(rej.body)


# -- routes -------------------------------------------------------------------------------------


def test_unknown_ws_path_is_404(serve):
    server = serve("ws_app:app")
    rej = rejected(server.port, "/nowhere")
    assert rej.status == 404
    assert error_body(rej)["status"] == 404
    echo_once(server)  # the server goes on


def test_plain_http_get_to_a_ws_path_is_400_with_a_message(serve):
    server = serve("ws_app:app")
    resp = requests.get(server.url + "/echo", timeout=5)
    assert resp.status_code == 400
    body = resp.json()
    assert body["status"] == 400
    assert "WebSocket" in body["error"] and "/echo" in body["error"]


def test_route_matching_ignores_the_query_string(serve):
    server = serve("ws_app:app")
    with connect(server.ws_url("/feed?token=x&y=1")) as ws:
        ws.send("!whoami")
        assert json.loads(ws.recv(timeout=5))["path"] == "/feed"


def test_handshake_response_is_rfc6455(serve):
    server = serve("ws_app:app")
    # RawWS.connect checks Sec-WebSocket-Accept against the key it sent.
    with RawWS.connect(server.port, "/echo") as ws:
        assert ws.headers["upgrade"].lower() == "websocket"
        assert "upgrade" in ws.headers["connection"].lower()
        assert "sec-websocket-protocol" not in ws.headers
        ws.send_text("hi")
        assert ws.recv_message() == "hi"


# -- malformed handshakes: 400 with Sec-WebSocket-Version: 13 -------------------------------------

MALFORMED = {
    "key not base64": {"Sec-WebSocket-Key": "not base64 at all!!"},
    "key 15 bytes": {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"},
    "key 17 bytes": {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAAA="},
    "key missing": {"Sec-WebSocket-Key": None},
    "version 8": {"Sec-WebSocket-Version": "8"},
    "version missing": {"Sec-WebSocket-Version": None},
    "no Connection: Upgrade": {"Connection": "keep-alive"},
}


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_handshake_is_400_with_version_header(serve, headers):
    server = serve("ws_app:app")
    rej = rejected(server.port, "/echo", headers)
    assert rej.status == 400, rej
    assert rej.headers.get("sec-websocket-version") == "13"
    body = error_body(rej)
    assert body["status"] == 400 and body["error"]
    echo_once(server)


def test_post_with_upgrade_headers_is_400_with_version_header(serve):
    server = serve("ws_app:app")
    rej = rejected(server.port, "/echo", {"Content-Length": "0"}, method="POST")
    assert rej.status == 400
    assert rej.headers.get("sec-websocket-version") == "13"
    assert "GET" in error_body(rej)["error"]


def test_malformed_key_message_says_what_to_fix(serve):
    server = serve("ws_app:app")
    rej = rejected(server.port, "/echo", {"Sec-WebSocket-Version": "8"})
    assert "13" in error_body(rej)["error"]
    rej = rejected(server.port, "/echo", {"Sec-WebSocket-Key": "abc"})
    assert "Sec-WebSocket-Key" in error_body(rej)["error"]


# -- origins -------------------------------------------------------------------------------------


def test_default_origin_policy_is_same_origin(serve):
    server = serve("ws_app:app")
    same = f"http://127.0.0.1:{server.port}"
    echo_once(server, origin=same)
    with RawWS.connect(server.port, "/echo", {"Origin": same}) as ws:
        ws.send_text("ok")
        assert ws.recv_message() == "ok"
    # Another port on the same host is another origin.
    for origin in ("http://evil.example", f"http://127.0.0.1:{server.port + 1}", "null"):
        rej = rejected(server.port, "/echo", {"Origin": origin})
        assert rej.status == 403, origin
        assert error_body(rej)["status"] == 403
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url("/echo"), origin="http://evil.example")
    assert info.value.response.status_code == 403
    refused = r"WARNING blaze_green: refused WebSocket to /echo from origin "
    server.wait_for_output(refused + r"'http://evil\.example'")
    server.wait_for_output(refused + r"'null'")


def test_same_origin_needs_the_same_scheme_when_both_ports_are_explicit(serve):
    # a plain-http server: https://host:PORT is another origin even though host:port match
    server = serve("ws_app:app")
    rej = rejected(server.port, "/echo", {"Origin": f"https://127.0.0.1:{server.port}"})
    assert rej.status == 403
    assert error_body(rej)["status"] == 403
    echo_once(server, origin=f"http://127.0.0.1:{server.port}")


def test_no_origin_header_is_allowed(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port, "/echo", {"Origin": None}) as ws:
        ws.send_text("no origin")
        assert ws.recv_message() == "no origin"


def test_origin_list(serve):
    server = serve("ws_app:app", env={"ORIGINS": "http://a.example, https://b.example:8443"})
    for origin in ("http://a.example", "https://b.example:8443"):
        echo_once(server, origin=origin)
    for origin in ("http://c.example", "https://a.example", f"http://127.0.0.1:{server.port}"):
        assert rejected(server.port, "/echo", {"Origin": origin}).status == 403, origin
    assert rejected(server.port, "/echo", {"Origin": "null"}).status == 403
    with RawWS.connect(server.port, "/echo", {"Origin": None}) as ws:
        ws.send_text("x")
        assert ws.recv_message() == "x"


def test_origin_star_allows_any(serve):
    server = serve("ws_app:app", env={"ORIGINS": "*"})
    for origin in ("http://evil.example", "null", "https://x.y:1"):
        with RawWS.connect(server.port, "/echo", {"Origin": origin}) as ws:
            ws.send_text(origin)
            assert ws.recv_message() == origin


def test_origin_callable(serve):
    server = serve("ws_app:app", env={"ORIGINS": "callable"})
    echo_once(server, origin="https://app.good.example")
    rej = rejected(server.port, "/echo", {"Origin": "https://app.bad.example"})
    assert rej.status == 403
    server.wait_for_output(r"WARNING .*from origin 'https://app\.bad\.example'")
    with RawWS.connect(server.port, "/echo", {"Origin": None}) as ws:  # no Origin: allowed
        ws.send_text("no origin")
        assert ws.recv_message() == "no origin"


# -- before_open ---------------------------------------------------------------------------------


def test_route_before_open_rejects_with_http_error_status_and_json_body(serve):
    server = serve("ws_app:app")
    rej = rejected(server.port, "/auth")
    assert rej.status == 401
    assert error_body(rej) == {"error": "a token is required", "status": 401}
    rej = rejected(server.port, "/auth?token=bad")
    assert rej.status == 403
    assert error_body(rej) == {"error": "token bad is not valid", "status": 403}
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url("/auth"))
    assert info.value.response.status_code == 401


def test_before_open_return_value_becomes_user_data(serve):
    server = serve("ws_app:app")
    with connect(server.ws_url("/auth?token=good")) as ws:
        ws.send("!user")
        assert json.loads(ws.recv(timeout=5)) == {"user": "alice", "order": ["route"]}
    with connect(server.ws_url("/echo")) as ws:  # no hook: user_data defaults to None
        ws.send("!user")
        assert json.loads(ws.recv(timeout=5)) is None


def test_app_wide_before_open_runs_first(serve):
    server = serve("ws_app:app", env={"APP_BEFORE_OPEN": "1"})
    # Both hooks: the route's saw the app-wide one's mark, and the route's value wins.
    with connect(server.ws_url("/auth?token=good")) as ws:
        ws.send("!user")
        assert json.loads(ws.recv(timeout=5)) == {"user": "alice", "order": ["app", "route"]}
    # Only the app-wide hook returns a value: it becomes user_data.
    with connect(server.ws_url("/echo")) as ws:
        ws.send("!user")
        assert json.loads(ws.recv(timeout=5)) == {"app": True}
    # The app-wide hook rejects before the route's runs (which would answer 401).
    rej = rejected(server.port, "/auth", {"X-Deny": "1"})
    assert rej.status == 403
    assert error_body(rej) == {"error": "denied by the app-wide hook", "status": 403}


def test_before_open_other_exception_is_500_and_logged(serve):
    server = serve("ws_app:app")
    rej = rejected(server.port, "/boom")
    assert rej.status == 500
    assert error_body(rej)["status"] == 500
    server.wait_for_output(r"ValueError: before_open failed on purpose")
    assert "Traceback" in server.output
    echo_once(server)


# -- limits --------------------------------------------------------------------------------------


def count(server, path: str = "/echo") -> int:
    return requests.get(server.url + "/count", params={"path": path}, timeout=5).json()["count"]


def accepted(port: int) -> RawWS | None:
    result = handshake(port, "/echo")
    return result if isinstance(result, RawWS) else None


def test_max_connections_refuses_with_503_then_admits_after_a_close(serve):
    server = serve("ws_app:app", env={"MAX_CONN": "2"})
    first = RawWS.connect(server.port, "/echo")
    second = RawWS.connect(server.port, "/echo")
    try:
        rej = rejected(server.port, "/echo")
        assert rej.status == 503
        assert error_body(rej)["status"] == 503
        server.wait_for_output(r"max_connections \(2\) reached")
        first.send_close(1000)
        assert first.recv_close().code == 1000
        # The slot frees once the session has ended on the server: poll.
        third = wait_until(lambda: accepted(server.port), 5, what="a handshake after a close")
        with third:
            third.send_text("in")
            assert third.recv_message() == "in"
            assert rejected(server.port, "/echo").status == 503
    finally:
        first.close()
        second.close()


def test_refused_handshakes_hold_no_slot_and_open_no_session(serve):
    server = serve("ws_app:app", env={"MAX_CONN": "1"})
    for path, status in [("/auth", 401), ("/auth?token=bad", 403), ("/boom", 500)] * 3:
        assert rejected(server.port, path).status == status
    assert rejected(server.port, "/echo", {"Origin": "http://evil.example"}).status == 403
    assert rejected(server.port, "/echo", {"Sec-WebSocket-Version": "8"}).status == 400
    # The one slot is still free.
    with RawWS.connect(server.port, "/echo") as ws:
        ws.send_text("!whoami")
        assert json.loads(ws.recv_message())["sid"] == 1  # no on_open ran before this one
        assert rejected(server.port, "/echo").status == 503


def test_max_body_size_is_413(serve):
    server = serve("ws_app:app", env={"MAX_BODY": "1000"})
    ok = requests.post(server.url + "/upload", data=b"x" * 1000, timeout=5)
    assert ok.status_code == 200 and ok.json() == {"length": 1000}
    resp = requests.post(server.url + "/upload", data=b"x" * 1001, timeout=5)
    assert resp.status_code == 413
    assert resp.json()["status"] == 413


# -- subprotocols --------------------------------------------------------------------------------


def test_subprotocol_first_offered_that_the_route_accepts(serve):
    server = serve("ws_app:app")
    # The route lists ["v2", "v1"]; the client's order decides.
    with connect(server.ws_url("/proto"), subprotocols=["v1", "v2"]) as ws:
        assert ws.subprotocol == "v1"
        assert ws.recv(timeout=5) == "subprotocol=v1"
    with RawWS.connect(server.port, "/proto", {"Sec-WebSocket-Protocol": "v3, v2, v1"}) as raw:
        assert raw.headers["sec-websocket-protocol"] == "v2"
        assert raw.recv_message() == "subprotocol=v2"


def test_no_matching_subprotocol_opens_without_one(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port, "/proto", {"Sec-WebSocket-Protocol": "v3, chat"}) as raw:
        assert "sec-websocket-protocol" not in raw.headers
        assert raw.recv_message() == "subprotocol=None"
        raw.send_text("still open")
        assert raw.recv_message() == "still open"
    # A route without subprotocols never selects one.
    with RawWS.connect(server.port, "/echo", {"Sec-WebSocket-Protocol": "v1"}) as raw:
        assert "sec-websocket-protocol" not in raw.headers


def test_websocket_client_library_negotiates_a_subprotocol(serve):
    server = serve("ws_app:app")
    ws = websocket.create_connection(server.ws_url("/proto"), subprotocols=["v1"], timeout=5)
    try:
        assert ws.getsubprotocol() == "v1"
        assert ws.recv() == "subprotocol=v1"
    finally:
        ws.close()


# -- servers without the WebSocket handler --------------------------------------------------------


def test_stock_gunicorn_gevent_worker_answers_400_naming_the_right_worker(serve):
    server = serve("ws_stock_app:app", mode="gunicorn", worker_class="gevent", workers=1, env={})
    rej = rejected(server.port, "/echo")
    assert rej.status == 400
    assert "blaze_green.worker.GeventWebSocketWorker" in error_body(rej)["error"]
    # Plain HTTP still works there.
    assert requests.get(server.url + "/hello", timeout=5).text == "hi"


def test_handshake_request_helper_can_leave_headers_out():
    # wsraw itself: a None value leaves a header out, so the tests above send what they claim.
    request, key = handshake_request(1234, "/x", {"Sec-WebSocket-Key": None, "Origin": "null"})
    assert key is None
    assert b"Sec-WebSocket-Key" not in request and b"Origin: null\r\n" in request
