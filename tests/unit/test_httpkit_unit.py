"""Cookies, ranges, static streaming and form parsing, in-process (tests/test_httpkit.py drives
the same through a real server)."""

import datetime
import io
import os

import pytest

from blaze_green.cookies import parse_cookies, set_cookie_value
from blaze_green.http import HTTPError, Request, Response
from blaze_green.static import StaticFiles, content_type, parse_range

UTC = datetime.UTC


def test_set_cookie_value_attributes():
    when = datetime.datetime(
        2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert set_cookie_value("a", "b", expires=when) == (
        "a=b; Expires=Wed, 02 Jan 2030 01:04:05 GMT; Path=/"
    )
    assert set_cookie_value("a", "b", max_age=datetime.timedelta(minutes=2), path=None) == (
        "a=b; Max-Age=120"
    )
    assert set_cookie_value("a", "b", expires=86400.5, samesite="Strict") == (
        "a=b; Expires=Fri, 02 Jan 1970 00:00:00 GMT; Path=/; SameSite=Strict"
    )
    assert set_cookie_value("a", "b", secure=True, samesite="None").endswith(
        "; Secure; SameSite=None"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"name": "a b"}, ValueError, "invalid cookie name"),
        ({"name": ""}, ValueError, "invalid cookie name"),
        ({"name": "a;b"}, ValueError, "invalid cookie name"),
        ({"value": "a;b"}, ValueError, "invalid cookie value"),
        ({"value": "a\r\nSet-Cookie: x=1"}, ValueError, "invalid cookie value"),
        ({"value": "caf\u00e9"}, ValueError, "encode it first"),
        ({"value": 'q"uote'}, ValueError, "invalid cookie value"),
        ({"value": 5}, TypeError, "str"),
        ({"expires": datetime.datetime(2030, 1, 1)}, ValueError, "aware datetime"),
        ({"expires": True}, TypeError, "expires"),
        ({"expires": "tomorrow"}, TypeError, "expires"),
        ({"max_age": 1.5}, TypeError, "max_age"),
        ({"samesite": "lax"}, ValueError, "samesite is one of"),
        ({"samesite": "None"}, ValueError, "needs secure=True"),
        ({"path": "/a;b"}, ValueError, "invalid cookie path"),
        ({"domain": "x\n"}, ValueError, "invalid cookie domain"),
    ],
)
def test_set_cookie_value_refuses(kwargs, error, text):
    args = {"name": "n", "value": "v", **kwargs}
    with pytest.raises(error, match=text):
        set_cookie_value(**args)


def test_response_set_and_delete_cookie_give_several_headers():
    resp = Response("x")
    resp.set_cookie("a", "1")
    resp.set_cookie("b", "2", httponly=True)
    resp.delete_cookie("c", path="/p", domain="example.com")
    _, headers, _ = resp.encode()
    assert [v for k, v in headers if k == "Set-Cookie"] == [
        "a=1; Path=/",
        "b=2; Path=/; HttpOnly",
        "c=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; Path=/p",
    ]
    with pytest.raises(ValueError):
        resp.set_cookie("d", "x\ny")
    assert len(resp.headers) == 3  # nothing half-added


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", {}),
        ("a=1", {"a": "1"}),
        ("a=1; b=2", {"a": "1", "b": "2"}),
        ("a=1;b=2;", {"a": "1", "b": "2"}),
        ("novalue; a=1", {"a": "1"}),
        ("=x; a=1", {"a": "1"}),
        ('a="quoted value"', {"a": "quoted value"}),
        ("a=1; a=2", {"a": "1"}),
        ("a=b=c", {"a": "b=c"}),
        ("  spaced  =  v  ", {"spaced": "v"}),
        ('j={"x":1}', {"j": '{"x":1}'}),
        ("caf\u00c3\u00a9=\u00c3\u00a9", {"caf\u00e9": "\u00e9"}),  # UTF-8 through WSGI latin-1
    ],
)
def test_parse_cookies(header, expected):
    assert parse_cookies(header) == expected


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=0-", 10, (0, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=5-100", 10, (5, 9)),
        ("bytes=10-", 10, False),
        ("bytes=-0", 10, False),
        ("bytes=0-", 0, False),
        ("bytes=-5", 0, False),
        ("bytes=3-2", 10, None),
        ("bytes=-", 10, None),
        ("bytes=0-1,3-4", 10, None),
        ("bytes=a-b", 10, None),
        ("lines=0-1", 10, None),
        (" bytes=1-2 ", 10, (1, 2)),
    ],
)
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.js.gz", "application/octet-stream"),  # the bytes as they are, not a js type
        ("a.woff2", "font/woff2"),
        ("noext", "application/octet-stream"),
    ],
)
def test_static_content_type(name, expected):
    assert content_type(name) == expected


def environ(path, **extra):
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": ""}
    env.update(extra)
    return env


def test_static_streams_in_chunks_and_closes_the_file(tmp_path):
    data = os.urandom(10 * 1000 + 7)
    (tmp_path / "f.bin").write_bytes(data)
    files = StaticFiles(tmp_path, chunk_size=1000)
    started = []
    body = files(environ("/f.bin"), lambda status, headers: started.append((status, headers)))
    assert started[0][0] == "200 OK"
    chunks = list(body)
    assert [len(c) for c in chunks] == [1000] * 10 + [7]  # never the whole file at once
    assert b"".join(chunks) == data
    body.close()
    assert body.file.closed
    ranged = files(environ("/f.bin", HTTP_RANGE="bytes=2500-4999"), lambda *a: None)
    assert [len(c) for c in ranged] == [1000, 1000, 500]
    ranged.close()


def test_static_uses_the_servers_file_wrapper_when_offered(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"abc")
    seen = []

    def wrapper(file, size):
        seen.append((file.name, size))
        return [file.read()]

    body = StaticFiles(tmp_path)(
        environ("/f.txt", **{"wsgi.file_wrapper": wrapper}), lambda *a: None
    )
    assert body == [b"abc"] and seen[0][0].endswith("f.txt")


def test_static_directory_must_exist(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        StaticFiles(tmp_path / "missing")


@pytest.mark.parametrize(
    "prefix, says",
    [
        ("static", "write '/static'"),
        ("/static/", "write '/static'"),
        ("/a//b", "empty segment"),
        ("/a?b", "without '?'"),
        ("/files/:name", "not a route pattern"),
    ],
)
def test_app_static_prefix_is_checked_as_a_mount_prefix_is(tmp_path, prefix, says):
    from blaze_green import App

    with pytest.raises(ValueError, match="static prefix") as info:
        App().static(prefix, tmp_path)
    assert says in str(info.value)


def test_app_static_prefix_type_and_duplicates(tmp_path):
    from blaze_green import App

    app = App()
    with pytest.raises(TypeError, match="static prefix must be a str"):
        app.static(b"/static", tmp_path)
    app.static("/static", tmp_path)
    app.static("/", tmp_path)
    with pytest.raises(ValueError, match="already served at '/static'"):
        app.static("/static", tmp_path)
    with pytest.raises(ValueError, match="already served at '/'"):
        app.static("/", tmp_path)


def request(ctype, body):
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "CONTENT_TYPE": ctype,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    return Request(env, max_body_size=1 << 20)


def test_request_form_empty_for_other_bodies():
    req = request("application/json", b'{"a": 1}')
    assert req.form == {} and req.files == {} and req.json == {"a": 1}


def test_request_multipart_limits_map_to_413():
    parts = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(1001)
    )
    req = request("multipart/form-data; boundary=B", parts + b"--B--\r\n")
    with pytest.raises(HTTPError) as exc:
        _ = req.form
    assert exc.value.status == 413


def test_request_multipart_quoted_boundary():
    body = b'--a b\r\nContent-Disposition: form-data; name="k"\r\n\r\nv\r\n--a b--\r\n'
    assert request('multipart/form-data; boundary="a b"', body).form == {"k": "v"}


def test_request_urlencoded_field_limit_is_413():
    req = request("application/x-www-form-urlencoded", b"&".join([b"a=1"] * 10001))
    with pytest.raises(HTTPError) as exc:
        _ = req.form
    assert exc.value.status == 413 and "10000 fields" in exc.value.message


def test_uploaded_file_closed_by_request_close():
    body = (
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--B--\r\n"
    )
    req = request("multipart/form-data; boundary=B", body)
    upload = req.files["f"]
    assert (upload.filename, upload.content_type, upload.read()) == (
        "a.txt",
        "text/plain",
        b"hello",
    )
    out = io.BytesIO()
    assert upload.save(out) == 5 and out.getvalue() == b"hello"
    req.close()
    assert upload.closed
    with pytest.raises(ValueError, match="closed"):
        upload.read()
