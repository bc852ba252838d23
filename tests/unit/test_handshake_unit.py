"""ws/handshake.py, in-process: validate(), accept_key(), origin_allowed(), subprotocols and
the 101 headers, over hand-built WSGI environ dicts (no server, no socket)."""

import base64

import pytest

from blaze_green.http import HTTPError, Request
from blaze_green.ws.handshake import (
    GUID,
    accept_key,
    is_upgrade_request,
    origin_allowed,
    response_headers,
    select_subprotocol,
    validate,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def environ(**overrides):
    env = {
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/feed",
        "HTTP_HOST": "example.com",
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "HTTP_SEC_WEBSOCKET_KEY": KEY,
        "wsgi.url_scheme": "http",
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def rejection(**overrides) -> HTTPError:
    with pytest.raises(HTTPError) as info:
        validate(environ(**overrides))
    return info.value


# -- validate ----------------------------------------------------------------------------


def test_a_good_handshake_returns_its_key():
    assert validate(environ()) == KEY


def test_key_and_version_are_stripped():
    assert validate(environ(HTTP_SEC_WEBSOCKET_KEY=f"  {KEY} ")) == KEY
    assert validate(environ(HTTP_SEC_WEBSOCKET_VERSION=" 13 ")) == KEY


def test_server_protocol_defaults_to_http11_when_absent():
    assert validate(environ(SERVER_PROTOCOL=None)) == KEY


@pytest.mark.parametrize(
    "connection",
    ["Upgrade", "upgrade", "UPGRADE", "keep-alive, Upgrade", "Upgrade, keep-alive", "a,upgrade ,b"],
)
def test_connection_header_tokens_any_case(connection):
    assert validate(environ(HTTP_CONNECTION=connection)) == KEY


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"REQUEST_METHOD": "POST"}, "must use GET, not POST"),
        ({"REQUEST_METHOD": "HEAD"}, "must use GET, not HEAD"),
        ({"REQUEST_METHOD": None}, "must use GET"),
        ({"SERVER_PROTOCOL": "HTTP/1.0"}, "needs HTTP/1.1"),
        ({"SERVER_PROTOCOL": "HTTP/0.9"}, "needs HTTP/1.1"),
        ({"HTTP_CONNECTION": None}, "needs 'Connection: Upgrade'"),
        ({"HTTP_CONNECTION": "keep-alive"}, "needs 'Connection: Upgrade'"),
        ({"HTTP_CONNECTION": "keep-alive upgrade"}, "needs 'Connection: Upgrade'"),
        ({"HTTP_CONNECTION": "upgrades"}, "needs 'Connection: Upgrade'"),
        ({"HTTP_SEC_WEBSOCKET_VERSION": None}, "Sec-WebSocket-Version missing is not supported"),
        ({"HTTP_SEC_WEBSOCKET_VERSION": ""}, "Sec-WebSocket-Version missing is not supported"),
        ({"HTTP_SEC_WEBSOCKET_VERSION": "8"}, "Sec-WebSocket-Version 8 is not supported; use 13"),
        ({"HTTP_SEC_WEBSOCKET_VERSION": "13, 8"}, "13, 8 is not supported"),
        ({"HTTP_SEC_WEBSOCKET_KEY": None}, "Sec-WebSocket-Key must be 16 random bytes in base64"),
        ({"HTTP_SEC_WEBSOCKET_KEY": "not base64!!"}, "must be 16 random bytes"),
        ({"HTTP_SEC_WEBSOCKET_KEY": KEY.rstrip("=")}, "must be 16 random bytes"),  # no padding
        ({"HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbX*sZSBub25jZQ=="}, "must be 16 random bytes"),
        ({"HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25j\u00e9Q=="}, "must be 16 random bytes"),
        (
            {"HTTP_SEC_WEBSOCKET_KEY": base64.b64encode(b"x" * 15).decode()},
            "must be 16 random bytes",
        ),
        (
            {"HTTP_SEC_WEBSOCKET_KEY": base64.b64encode(b"x" * 17).decode()},
            "must be 16 random bytes",
        ),
        (
            {"HTTP_SEC_WEBSOCKET_KEY": base64.b64encode(b"x" * 32).decode()},
            "must be 16 random bytes",
        ),
    ],
)
def test_every_malformed_handshake_is_400_with_the_version_header(overrides, message):
    exc = rejection(**overrides)
    assert exc.status == 400
    assert message in exc.message
    assert exc.headers == [("Sec-WebSocket-Version", "13")]
    status, headers, body = exc.to_response().encode()
    assert status == "400 Bad Request"
    assert ("Sec-WebSocket-Version", "13") in headers
    assert b'"status":400' in body


def test_checks_run_in_order_method_first():
    exc = rejection(REQUEST_METHOD="POST", HTTP_SEC_WEBSOCKET_KEY="bad", HTTP_CONNECTION=None)
    assert "must use GET" in exc.message


def test_any_16_byte_key_is_accepted():
    key = base64.b64encode(bytes(range(16))).decode()
    assert validate(environ(HTTP_SEC_WEBSOCKET_KEY=key)) == key


# -- accept_key / response_headers -------------------------------------------------------


def test_accept_key_rfc6455_example():
    assert GUID == b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(KEY) == ACCEPT


def test_accept_key_depends_on_the_key():
    other = base64.b64encode(b"0123456789abcdef").decode()
    assert accept_key(other) != ACCEPT
    assert len(base64.b64decode(accept_key(other))) == 20  # a SHA-1 digest


def test_response_headers_without_and_with_subprotocol():
    assert response_headers(KEY, None) == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", ACCEPT),
    ]
    assert response_headers(KEY, "")[-1] == ("Sec-WebSocket-Accept", ACCEPT)
    assert response_headers(KEY, "v1.feed")[-1] == ("Sec-WebSocket-Protocol", "v1.feed")
    assert len(response_headers(KEY, "v1.feed")) == 4


@pytest.mark.parametrize(
    "upgrade, expected",
    [("websocket", True), ("WebSocket", True), ("h2c", False), (None, False)],
)
def test_is_upgrade_request(upgrade, expected):
    assert is_upgrade_request(environ(HTTP_UPGRADE=upgrade)) is expected


# -- origin_allowed ----------------------------------------------------------------------


def req(host="example.com", scheme="http", **extra):
    return Request(environ(HTTP_HOST=host, **{"wsgi.url_scheme": scheme}, **extra))


def test_no_origin_header_is_always_allowed():
    for policy in (None, [], ["http://a.test"], lambda o, r: False):
        assert origin_allowed(policy, None, req()) is True


@pytest.mark.parametrize(
    "origin, host, scheme, expected",
    [
        ("http://example.com", "example.com", "http", True),
        ("http://example.com:80", "example.com", "http", True),  # default port, explicit
        ("http://example.com", "example.com:80", "http", True),
        ("https://example.com", "example.com", "https", True),
        ("https://example.com:443", "example.com", "https", True),
        ("https://example.com", "example.com:443", "https", True),
        ("http://EXAMPLE.com", "Example.COM", "http", True),  # host names ignore case
        ("http://example.com:8080", "example.com:8080", "http", True),
        ("http://[::1]:8080", "[::1]:8080", "http", True),
        ("http://[::1]", "[::1]", "http", True),
        ("https://example.com", "example.com", "http", False),  # 443 vs 80
        ("http://example.com", "example.com", "https", False),  # 80 vs 443
        ("http://example.com:8080", "example.com", "http", False),
        ("http://example.com", "example.com:8080", "http", False),
        ("http://example.com:8080", "example.com:8081", "http", False),
        # the scheme counts when both ports are explicit (issue 14)
        ("http://example.com:80", "example.com:80", "https", False),
        ("https://example.com:443", "example.com:443", "http", False),
        ("http://example.com:8443", "example.com:8443", "https", False),
        ("https://example.com:8443", "example.com:8443", "https", True),
        ("wss://example.com:8443", "example.com:8443", "https", True),
        ("http://evil.test", "example.com", "http", False),
        ("http://example.com.evil.test", "example.com", "http", False),
        ("http://[::1]:8080", "[::2]:8080", "http", False),
        ("null", "example.com", "http", False),
        ("", "example.com", "http", False),
        ("example.com", "example.com", "http", False),  # no scheme: no netloc
        ("http://example.com", "", "http", False),  # no Host header
    ],
)
def test_same_origin_default_policy(origin, host, scheme, expected):
    assert origin_allowed(None, origin, req(host, scheme)) is expected


def test_list_policy_is_exact_strings():
    policy = ["https://app.test", "http://localhost:3000"]
    r = req()
    assert origin_allowed(policy, "https://app.test", r) is True
    assert origin_allowed(policy, "http://localhost:3000", r) is True
    assert origin_allowed(policy, "http://app.test", r) is False
    assert origin_allowed(policy, "https://app.test:443", r) is False  # not normalised
    assert origin_allowed(policy, "null", r) is False
    assert origin_allowed(policy, "http://example.com", r) is False  # same origin not implied
    assert origin_allowed(("https://app.test",), "https://app.test", r) is True
    assert origin_allowed(frozenset({"https://app.test"}), "https://app.test", r) is True
    assert origin_allowed([], "https://app.test", r) is False


def test_list_policy_can_allow_null_or_star():
    r = req()
    assert origin_allowed(["null"], "null", r) is True
    assert origin_allowed(["https://a.test", "*"], "http://anything.test", r) is True


def test_single_string_policy():
    r = req()
    assert origin_allowed("https://app.test", "https://app.test", r) is True
    assert origin_allowed("https://app.test", "https://app.tes", r) is False  # not a substring


def test_star_allows_every_origin_also_null():
    r = req()
    for origin in ("http://evil.test", "null", "https://example.com"):
        assert origin_allowed("*", origin, r) is True


def test_callable_policy_gets_origin_and_request():
    seen = []

    def policy(origin, request):
        seen.append((origin, request.path))
        return origin.endswith(".trusted.test")

    r = req(PATH_INFO="/chat")
    assert origin_allowed(policy, "https://a.trusted.test", r) is True
    assert origin_allowed(policy, "https://evil.test", r) is False
    assert seen == [("https://a.trusted.test", "/chat"), ("https://evil.test", "/chat")]
    assert origin_allowed(lambda o, r: 1, "x", r) is True  # truthy values become bool
    assert origin_allowed(lambda o, r: None, "x", r) is False


# -- select_subprotocol ------------------------------------------------------------------


@pytest.mark.parametrize(
    "offered, accepted, expected",
    [
        ("v1.feed", ["v1.feed"], "v1.feed"),
        ("v2, v1", ["v1", "v2"], "v2"),  # the client's first choice wins
        ("v3 , v1", ("v1",), "v1"),
        ("v3,v4", ["v1"], None),
        ("", ["v1"], None),
        (None, ["v1"], None),
        ("v1", [], None),
        ("v1", None, None),
        ("V1", ["v1"], None),  # subprotocol tokens are case-sensitive
        ("v1.feed.x", ["v1.feed"], None),
    ],
)
def test_select_subprotocol(offered, accepted, expected):
    assert select_subprotocol(offered, accepted) == expected
