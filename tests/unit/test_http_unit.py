"""blaze_green.http, in-process: Response.encode(), to_response(), status lines, HTTPError,
and Request parsing over hand-built WSGI environ dicts with an io.BytesIO body."""

import io
import json
from dataclasses import dataclass

import pytest

from blaze_green.http import HTTPError, Request, Response, status_line, to_response
from blaze_green.models import Json, model

HTML = "text/html; charset=utf-8"
JSON = "application/json"
OCTETS = "application/octet-stream"


@model
@dataclass
class Point:
    x: int
    y: int


def encoded(response):
    status, headers, body = response.encode()
    return status, dict(headers), body, headers


# -- Response.encode ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, ctype, data",
    [
        ("héllo", HTML, "héllo".encode()),
        ("", HTML, b""),
        (b"\x00\xff", OCTETS, b"\x00\xff"),
        (bytearray(b"ab"), OCTETS, b"ab"),
        (memoryview(b"abc")[1:], OCTETS, b"bc"),
        ({"a": 1, "é": [True, None]}, JSON, '{"a":1,"é":[true,null]}'.encode()),
        ([1, "x"], JSON, b'[1,"x"]'),
        ([], JSON, b"[]"),
        (Json("alive"), JSON, b'"alive"'),
        (Json(None), JSON, b"null"),
        (Json({"status": "alive"}), JSON, b'{"status":"alive"}'),
        (Point(1, 2), JSON, b'{"x":1,"y":2}'),
        ([Point(1, 2), Point(3, 4)], JSON, b'[{"x":1,"y":2},{"x":3,"y":4}]'),
    ],
)
def test_body_types(body, ctype, data):
    status, h, out, _ = encoded(Response(body))
    assert status == "200 OK"
    assert h["Content-Type"] == ctype
    assert out == data and type(out) is bytes
    assert h["Content-Length"] == str(len(data))


def test_none_body_has_no_content_type_and_zero_length():
    status, h, out, headers = encoded(Response(None))
    assert out == b"" and "Content-Type" not in h and h["Content-Length"] == "0"
    assert headers == [("Content-Length", "0")]


def test_default_response_is_empty_octets():
    assert Response().encode() == (
        "200 OK",
        [("Content-Type", OCTETS), ("Content-Length", "0")],
        b"",
    )


def test_content_type_argument_wins_over_header_and_body_type():
    resp = Response("x", headers={"content-type": "text/plain"}, content_type="text/csv")
    _, h, _, headers = encoded(resp)
    assert h["Content-Type"] == "text/csv"
    assert [k for k, _ in headers].count("Content-Type") == 1
    assert not any(k == "content-type" for k, _ in headers)


def test_content_type_header_wins_over_body_type_any_case():
    for name in ("Content-Type", "content-type", "CONTENT-TYPE"):
        _, headers, _ = Response({"a": 1}, headers=[(name, "application/problem+json")]).encode()
        assert [v for k, v in headers if k.lower() == "content-type"] == [
            "application/problem+json"
        ]


def test_empty_content_type_argument_falls_back():
    _, h, _, _ = encoded(Response("x", content_type=""))
    assert h["Content-Type"] == HTML


def test_given_content_length_is_replaced_other_headers_kept_in_order():
    resp = Response("abc", 201, [("X-A", "1"), ("Content-Length", "999"), ("X-B", "2")])
    status, _, _, headers = encoded(resp)
    assert status == "201 Created"
    assert headers == [
        ("X-A", "1"),
        ("X-B", "2"),
        ("Content-Type", HTML),
        ("Content-Length", "3"),
    ]


def test_repeated_headers_are_kept():
    _, _, _, headers = encoded(Response("", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]))
    assert [v for k, v in headers if k == "Set-Cookie"] == ["a=1", "b=2"]


@pytest.mark.parametrize("status", [100, 101, 103, 199, 204, 304])
def test_no_body_statuses_send_no_body_and_no_content_length(status):
    _, h, out, _ = encoded(Response("not sent", status))
    assert out == b""
    assert "Content-Length" not in h


@pytest.mark.parametrize("status", [200, 205, 299, 303, 404, 500])
def test_other_statuses_carry_content_length(status):
    _, h, out, _ = encoded(Response("x", status))
    assert out == b"x" and h["Content-Length"] == "1"


def test_unserializable_body_is_a_type_error_naming_the_type():
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        Response({"a": object()}).encode()


# -- status_line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, line",
    [
        (200, "200 OK"),
        (101, "101 Switching Protocols"),
        (404, "404 Not Found"),
        (418, "418 I'm a Teapot"),
        (599, "599 Status 599"),
        (999, "999 Status 999"),
        (100, "100 Continue"),
    ],
)
def test_status_line(status, line):
    assert status_line(status) == line
    assert status_line(status) == line  # cached the second time


@pytest.mark.parametrize("status", [0, 99, 1000, -200])
def test_status_line_rejects_non_three_digit(status):
    with pytest.raises(ValueError, match="3-digit number"):
        status_line(status)


# -- to_response -------------------------------------------------------------------------


def test_to_response_passes_a_response_through():
    resp = Response("x", 202)
    assert to_response(resp) is resp


@pytest.mark.parametrize(
    "value",
    ["s", b"b", bytearray(b"b"), memoryview(b"m"), {"a": 1}, [1], Json(3), Point(0, 0)],
)
def test_to_response_plain_values_are_200(value):
    resp = to_response(value)
    assert resp.status == 200 and resp.body is value and resp.headers == []


def test_to_response_none_is_204():
    resp = to_response(None)
    assert resp.status == 204
    assert resp.encode()[2] == b""


def test_to_response_tuples():
    two = to_response(("made", 201))
    assert (two.body, two.status, two.headers) == ("made", 201, [])
    three = to_response(({"a": 1}, 202, {"X-Id": "7"}))
    assert (three.body, three.status, three.headers) == ({"a": 1}, 202, [("X-Id", "7")])
    listed = to_response(("", 200, [("A", "1"), ("A", "2")]))
    assert listed.headers == [("A", "1"), ("A", "2")]


@pytest.mark.parametrize("value, n", [((), 0), (("x",), 1), (("x", 200, {}, 1), 4)])
def test_to_response_bad_tuple_length(value, n):
    with pytest.raises(TypeError, match=rf"return \(body, status\) .*not a tuple of {n}$"):
        to_response(value)


@pytest.mark.parametrize(
    "value, name", [(42, "int"), (1.5, "float"), ({1, 2}, "set"), (object(), "object")]
)
def test_to_response_other_types(value, name):
    with pytest.raises(TypeError, match=f"a handler returned {name}: return str, bytes, dict"):
        to_response(value)


# -- HTTPError ---------------------------------------------------------------------------


def test_http_error_to_response():
    exc = HTTPError(409, "taken", {"Retry-After": "3"})
    status, headers, body = exc.to_response().encode()
    assert status == "409 Conflict"
    assert json.loads(body) == {"error": "taken", "status": 409}
    assert ("Retry-After", "3") in headers and ("Content-Type", JSON) in headers
    assert str(exc) == "409: taken"


def test_http_error_default_messages():
    assert HTTPError(404).message == "Not Found"
    assert HTTPError(599).message == "HTTP 599"
    assert HTTPError(400, {"x": ["bad"]}).to_response().body == {
        "error": {"x": ["bad"]},
        "status": 400,
    }
    assert HTTPError(400).headers == []
    assert HTTPError(400, "m", [("A", "b")]).headers == [("A", "b")]


# -- Request -----------------------------------------------------------------------------


def request(body=b"", length=None, max_body_size=None, **environ):
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/p",
        "wsgi.input": io.BytesIO(body),
    }
    if length is not None:
        env["CONTENT_LENGTH"] = str(length)
    env.update(environ)
    return Request(env, max_body_size)


def test_request_basics():
    r = request(REQUEST_METHOD="get", PATH_INFO="/caf\xc3\xa9", REMOTE_ADDR="10.0.0.1")
    assert r.method == "GET"
    assert r.path == "/café"  # PEP 3333 latin-1 path recovered as UTF-8
    assert r.remote_addr == "10.0.0.1"
    assert repr(r) == "<Request GET /café>"
    bare = Request({})
    assert bare.method == "GET" and bare.path == "/" and bare.remote_addr is None


def test_query_first_value_and_getlist():
    r = request(QUERY_STRING="a=1&b=&a=2&c=%C3%A9&d")
    assert r.query == {"a": "1", "b": "", "c": "é", "d": ""}
    assert r.query.getlist("a") == ["1", "2"]
    assert r.query.getlist("zz") == []
    assert request().query == {}


def test_headers_are_case_insensitive():
    r = request(
        HTTP_X_REQUEST_ID="abc", CONTENT_TYPE="application/json", CONTENT_LENGTH="2", body=b"{}"
    )
    h = r.headers
    assert h["x-request-id"] == h["X-Request-Id"] == h["X-REQUEST-ID"] == "abc"
    assert h["content-type"] == "application/json" and h["Content-Length"] == "2"
    assert "x-request-id" in h and "x-other" not in h and 3 not in h
    assert h.get("x-other") is None
    with pytest.raises(KeyError):
        h["x-other"]
    assert set(h) == {"X-Request-Id", "Content-Type", "Content-Length"}
    assert len(h) == 3


def test_json_body():
    r = request(b'{"a": [1, 2]}', 13)
    assert r.json == {"a": [1, 2]}
    assert r.json is r.json  # parsed once
    assert request(b"null", 4).json is None


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "request body is empty"),
        (b"{", "request body is not valid JSON"),
        (b"{'a': 1}", "request body is not valid JSON"),
        (b"\xff\xfe", "request body is not valid JSON"),
    ],
)
def test_json_400s(body, message):
    with pytest.raises(HTTPError) as info:
        _ = request(body, len(body)).json
    assert info.value.status == 400 and message in info.value.message


def test_body_reads_only_content_length_bytes():
    r = request(b"abcdef", 3)
    assert r.data == b"abc" and r.text == "abc"
    assert request(b"abc").data == b""  # no Content-Length, not chunked: no body
    assert request(b"abc", 0).data == b""


def test_bad_content_length_is_400():
    with pytest.raises(HTTPError) as info:
        _ = request(b"abc", "three").data
    assert info.value.status == 400 and "Content-Length is not a number" in info.value.message


def test_declared_body_over_the_limit_is_413_without_reading():
    stream = io.BytesIO(b"x" * 11)
    r = request(length=11, max_body_size=10, **{"wsgi.input": stream})
    with pytest.raises(HTTPError) as info:
        _ = r.data
    assert info.value.status == 413
    assert info.value.message == "request body is 11 bytes; the limit is 10"
    assert stream.tell() == 0  # refused before reading
    assert request(b"x" * 10, 10, max_body_size=10).data == b"x" * 10


def test_chunked_body_over_the_limit_is_413():
    chunked = {"HTTP_TRANSFER_ENCODING": "chunked"}
    assert request(b"x" * 10, max_body_size=10, **chunked).data == b"x" * 10
    with pytest.raises(HTTPError) as info:
        _ = request(b"x" * 11, max_body_size=10, **chunked).data
    assert info.value.status == 413


@model
@dataclass
class Update:
    type: str
    value: float


def test_body_model_validates():
    r = request(b'{"type": "t", "value": 1.5}', 27)
    assert r.body(Update) == Update("t", 1.5)


@pytest.mark.parametrize(
    "body, field",
    [(b'{"type": "t"}', "value"), (b'{"type": "t", "value": "x"}', "value"), (b"[1]", "_schema")],
)
def test_body_model_400_with_marshmallow_messages(body, field):
    with pytest.raises(HTTPError) as info:
        request(body, len(body)).body(Update)
    assert info.value.status == 400
    assert field in info.value.message
