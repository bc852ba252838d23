"""Static files, cookies, forms and uploads, and the test client's cookie jar, against a real
`blaze-green run` process (tests/apps/httpkit_app.py). docs/http.md names these tests."""

import contextlib
import hashlib
import os
import socket
from pathlib import Path

import pytest
import requests

from blaze_green.testing import ServerProcess, TestClient, WebSocketRejected, wait_until

APPS = Path(__file__).parent / "apps"
BIG = 3 * 1024 * 1024 + 17  # over the 256 KiB chunk size many times


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("static")
    root = base / "public"
    (root / "sub").mkdir(parents=True)
    (root / "noindex").mkdir()
    (root / "a.txt").write_text("hello, static\n")
    (root / "app.js").write_text("console.log('hi');\n")
    (root / "style.css").write_text("body{}\n")
    (root / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (root / "blob.unknownext").write_bytes(b"\x00\x01")
    (root / "empty.txt").write_bytes(b"")
    (root / "own").write_text("the file, not the route")
    (root / ".env").write_text("SECRET=1")
    (root / "sub" / "index.html").write_text("<h1>index</h1>")
    (root / "sub" / "page.html").write_text("<p>page</p>")
    (root / "big.bin").write_bytes(os.urandom(BIG))
    with open(root / "huge.bin", "wb") as f:
        f.truncate(256 * 1024 * 1024)  # sparse: more than any socket buffer holds
    (base / "secret.txt").write_text("outside")
    outside = base / "outside_dir"
    outside.mkdir()
    (outside / "x.txt").write_text("outside too")
    (root / "link-out").symlink_to(base / "secret.txt")
    (root / "linkdir-out").symlink_to(outside)
    (root / "link-in").symlink_to(root / "a.txt")
    deeper = base / "deeper"
    deeper.mkdir()
    (deeper / "a.txt").write_text("from the deeper mount")
    return root


@pytest.fixture(scope="module")
def server(tree):
    env = {
        "STATIC_DIR": str(tree),
        "STATIC_DEEPER": str(tree.parent / "deeper"),
        "BODY_TIMEOUT": "1.5",
    }
    with ServerProcess("httpkit_app:app", cwd=APPS, env=env) as srv:
        yield srv


def get(server, path, **kw):
    return requests.get(server.url + path, timeout=10, **kw)


def raw_status(server, target, method="GET"):
    """The status of a request whose target goes on the wire exactly as written."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# -- static files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("a.txt", "text/plain; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("pic.png", "image/png"),
        ("blob.unknownext", "application/octet-stream"),
        ("sub/page.html", "text/html; charset=utf-8"),
    ],
)
def test_static_content_type_and_length(server, tree, name, ctype):
    r = get(server, "/static/" + name)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == ctype
    assert r.content == (tree / name).read_bytes()
    assert r.headers["Content-Length"] == str(len(r.content))
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Cache-Control"] == "no-cache"


def test_static_etag_and_last_modified_give_304(server):
    r = get(server, "/static/a.txt")
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    assert etag.startswith('"') and modified.endswith("GMT")
    again = get(server, "/static/a.txt", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    weak = get(server, "/static/a.txt", headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304  # weak comparison for If-None-Match (RFC 9110 13.1.2)
    assert get(server, "/static/a.txt", headers={"If-None-Match": "*"}).status_code == 304
    since = get(server, "/static/a.txt", headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    old = get(
        server, "/static/a.txt", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert old.status_code == 200 and old.text == "hello, static\n"
    bad_date = get(server, "/static/a.txt", headers={"If-Modified-Since": "yesterday"})
    assert bad_date.status_code == 200


def test_static_if_none_match_wins_over_if_modified_since(server):
    modified = get(server, "/static/a.txt").headers["Last-Modified"]
    r = get(
        server,
        "/static/a.txt",
        headers={"If-None-Match": '"not-the-tag"', "If-Modified-Since": modified},
    )
    assert r.status_code == 200 and r.text == "hello, static\n"


def test_static_head(server):
    full = get(server, "/static/a.txt")
    r = requests.head(server.url + "/static/a.txt", timeout=10)
    assert r.status_code == 200 and r.content == b""
    for name in ("Content-Type", "Content-Length", "ETag", "Last-Modified"):
        assert r.headers[name] == full.headers[name]


def test_static_other_methods_are_405(server):
    r = requests.post(server.url + "/static/a.txt", data=b"x", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    assert "GET and HEAD" in r.json()["error"]


@pytest.mark.parametrize(
    ("header", "status", "body", "content_range"),
    [
        ("bytes=0-4", 206, b"hello", "bytes 0-4/14"),
        ("bytes=7-", 206, b"static\n", "bytes 7-13/14"),
        ("bytes=-7", 206, b"static\n", "bytes 7-13/14"),
        ("bytes=10-1000", 206, b"tic\n", "bytes 10-13/14"),
        ("bytes=-100", 206, b"hello, static\n", "bytes 0-13/14"),
        ("bytes=0-1,4-5", 200, b"hello, static\n", None),  # several ranges: the whole file
        ("bytes=5-2", 200, b"hello, static\n", None),  # invalid: ignored
        ("items=0-1", 200, b"hello, static\n", None),  # another unit: ignored
    ],
)
def test_static_range(server, header, status, body, content_range):
    r = get(server, "/static/a.txt", headers={"Range": header})
    assert r.status_code == status
    assert r.content == body
    assert r.headers["Content-Length"] == str(len(body))
    assert r.headers.get("Content-Range") == content_range


@pytest.mark.parametrize("header", ["bytes=14-", "bytes=100-200", "bytes=-0"])
def test_static_unsatisfiable_range_is_416(server, header):
    r = get(server, "/static/a.txt", headers={"Range": header})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */14"


def test_static_if_range(server):
    etag = get(server, "/static/a.txt").headers["ETag"]
    hit = get(server, "/static/a.txt", headers={"Range": "bytes=0-4", "If-Range": etag})
    assert hit.status_code == 206 and hit.content == b"hello"
    stale = get(server, "/static/a.txt", headers={"Range": "bytes=0-4", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == b"hello, static\n"


def test_static_large_file_streamed_whole_and_in_ranges(server, tree):
    data = (tree / "big.bin").read_bytes()
    with requests.get(server.url + "/static/big.bin", timeout=30, stream=True) as r:
        assert r.status_code == 200 and r.headers["Content-Length"] == str(BIG)
        got = b"".join(r.iter_content(65536))
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    start = 1024 * 1024 - 3
    part = get(server, "/static/big.bin", headers={"Range": f"bytes={start}-{start + 600000}"})
    assert part.status_code == 206 and part.content == data[start : start + 600001]


def test_static_file_closed_when_the_client_goes_away(server, tree):
    target = str(tree / "huge.bin")
    fd_dir = f"/proc/{server.proc.pid}/fd"

    def open_copies():
        count = 0
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):  # closed meanwhile
                count += os.readlink(os.path.join(fd_dir, fd)) == target
        return count

    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(b"GET /static/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        # the server is blocked in the middle of the file, holding it open
        wait_until(lambda: open_copies() == 1, 10, what="the file open while it is sent")
    finally:
        sock.close()
    wait_until(lambda: open_copies() == 0, 10, what="the file closed after the disconnect")


def test_static_empty_file(server):
    r = get(server, "/static/empty.txt")
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "0"


def test_static_directory_index_and_redirect(server):
    r = get(server, "/static/sub/")
    assert r.status_code == 200 and r.text == "<h1>index</h1>"
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    moved = get(server, "/static/sub?x=1", allow_redirects=False)
    assert moved.status_code == 301 and moved.headers["Location"] == "/static/sub/?x=1"
    assert get(server, "/static/noindex/").status_code == 404  # no listings
    root = get(server, "/static", allow_redirects=False)
    assert root.status_code == 301 and root.headers["Location"] == "/static/"
    assert get(server, "/static/").status_code == 404  # the root has no index.html


def test_static_symlink_inside_is_served(server):
    assert get(server, "/static/link-in").text == "hello, static\n"


@pytest.mark.parametrize(
    "target",
    [
        "/static/../secret.txt",
        "/static/sub/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/..%2fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/sub\\..\\..\\secret.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/a.txt%00.png",
        "/static/%00",
        "/static/./a.txt",
        "/static/.env",
        "/static/link-out",
        "/static/linkdir-out/x.txt",
        "/static/C:%5cWindows",
        "/static/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 dots
        "/static/nothing-here.txt",
        "/static/a.txt/",
    ],
)
def test_static_no_escape(server, target):
    status, body = raw_status(server, target)
    assert status == 404, (target, body)
    assert b"outside" not in body and b"SECRET" not in body


def test_static_own_routes_win(server, tree):
    assert (tree / "own").exists()
    assert get(server, "/static/own").text == "our own route"
    wrong_method = requests.post(server.url + "/static/own", timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method not allowed"
    plain = get(server, "/static/live")
    assert plain.status_code == 400 and "WebSocket endpoint" in plain.json()["error"]


def test_static_longest_prefix_wins(server):
    assert get(server, "/static/deeper/a.txt").text == "from the deeper mount"
    assert get(server, "/static/a.txt").text == "hello, static\n"


# -- cookies -----------------------------------------------------------------------------------


def test_set_cookie_headers(server):
    r = get(server, "/set-cookies")
    assert r.raw.headers.getlist("Set-Cookie") == [
        "plain=1; Path=/",
        "session=abc; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Lax",
        "dated=x; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Path=/",
        "epoch=y; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=127.0.0.1; Path=/cookies",
    ]


def test_delete_cookie(server):
    r = get(server, "/delete-cookie")
    assert r.headers["Set-Cookie"] == (
        "plain=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"
    )


def test_request_cookies_tolerate_malformed_headers(server):
    header = 'a=1; garbage; =x; b="two"; c=3=4;; d=; a=dup; e=caf\u00e9'
    r = get(server, "/cookies", headers={"Cookie": header.encode("utf-8")})
    assert r.json() == {"a": "1", "b": "two", "c": "3=4", "d": "", "e": "caf\u00e9"}
    assert get(server, "/cookies").json() == {}


@pytest.mark.parametrize(
    "path",
    [
        "/bad-cookie",
        "/bad-cookie?value=a%0d%0aX-Evil: 1",
        "/bad-cookie?value=sp%20ace",
        "/naive-expires",
    ],
)
def test_invalid_cookie_is_a_500_not_a_header(server, path):
    r = get(server, path)
    assert r.status_code == 500
    assert "Set-Cookie" not in r.headers and "X-Evil" not in r.headers


# -- forms and uploads -------------------------------------------------------------------------


def post(server, path, **kw):
    return requests.post(server.url + path, timeout=30, **kw)


def test_urlencoded_form(server):
    r = post(server, "/form", data={"a": ["1", "2"], "name": "Zoë", "empty": ""})
    assert r.json() == {"form": {"a": ["1", "2"], "name": ["Zoë"], "empty": [""]}, "files": {}}


def test_multipart_fields_and_files(server):
    files = [
        ("doc", ("notes.txt", b"some notes", "text/plain")),
        ("doc", ("more.bin", b"\x00\xff" * 10, "application/octet-stream")),
        ("pic", ("a b\u00e9.png", b"\x89PNG", "image/png")),
    ]
    r = post(server, "/form", data={"title": "Héllo", "tag": ["x", "y"]}, files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["form"] == {"title": ["Héllo"], "tag": ["x", "y"]}
    assert [f["filename"] for f in body["files"]["doc"]] == ["notes.txt", "more.bin"]
    assert body["files"]["doc"][1]["size"] == 20
    assert body["files"]["pic"] == [
        {
            "filename": "a b\u00e9.png",
            "content_type": "image/png",
            "size": 4,
            "sha256": hashlib.sha256(b"\x89PNG").hexdigest(),
        }
    ]


def test_large_upload_spooled_to_disk_and_closed_after_the_request(server):
    data = os.urandom(1536 * 1024)
    r = post(server, "/keep", files={"file": ("big.bin", data)})
    assert r.json() == {"spooled": True}
    assert get(server, "/kept").json()["closed"][-1] is True
    same = post(server, "/form", files={"file": ("big.bin", data)}).json()
    assert same["files"]["file"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_upload_save(server, tmp_path):
    data = os.urandom(300 * 1024)
    r = post(server, f"/save?dir={tmp_path}", files={"file": ("x.bin", data)})
    assert r.json()["written"] == len(data)
    assert (tmp_path / "saved.bin").read_bytes() == data


def test_upload_over_max_body_size_is_413(server):
    data = b"x" * (2 * 1024 * 1024 + 1)
    r = post(server, "/form", files={"file": ("big.bin", data)})
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():  # no Content-Length: counted while streamed into the parser
        yield b'--B\r\nContent-Disposition: form-data; name="f"; filename="f"\r\n\r\n'
        for _ in range(40):
            yield b"y" * 65536
        yield b"\r\n--B--\r\n"

    r = post(
        server, "/form", data=chunks(), headers={"Content-Type": "multipart/form-data; boundary=B"}
    )
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_chunked_multipart_upload(server):
    data = os.urandom(700 * 1024)

    def chunks():  # no Content-Length: Transfer-Encoding: chunked
        yield b'--B\r\nContent-Disposition: form-data; name="t"\r\n\r\nhi\r\n'
        yield b'--B\r\nContent-Disposition: form-data; name="f"; filename="f.bin"\r\n\r\n'
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]
        yield b"\r\n--B--\r\n"

    headers = {"Content-Type": "multipart/form-data; boundary=B"}
    body = post(server, "/form", data=chunks(), headers=headers).json()
    assert body["form"] == {"t": ["hi"]}
    assert body["files"]["f"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_stalled_multipart_upload_is_408(server):
    head = (
        "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode() + b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n')
        data = b""
        while chunk := sock.recv(65536):  # the server answers after body_timeout (1.5 s)
            data += chunk
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"request body timed out" in data


@pytest.mark.parametrize(
    ("ctype", "body", "message"),
    [
        ("multipart/form-data", b"--B\r\n\r\n--B--\r\n", "boundary"),
        ("multipart/form-data; boundary=B", b"no boundary in here", "malformed multipart"),
        (
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\ntrunc',
            "malformed multipart",
        ),
        (
            "multipart/form-data; boundary=B",
            b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n",
            "malformed multipart",
        ),
        (
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\xfe\r\n--B--\r\n',
            "not valid",
        ),
    ],
)
def test_malformed_multipart_is_400(server, ctype, body, message):
    r = post(server, "/form", data=body, headers={"Content-Type": ctype})
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_form_and_data_together(server):
    files = {"f": ("f.txt", b"abc")}
    r = post(server, "/data-then-form", data={"k": "v"}, files=files)
    body = r.json()
    assert body["form"] == {"k": "v"} and body["files"] == ["f"] and body["data"] > 0
    r = post(server, "/data-then-form", data={"k": "v"})  # urlencoded: both, in any order
    assert r.json()["form"] == {"k": "v"}
    r = post(server, "/form-then-data", data={"k": "v"})
    assert r.json() == {"error": None}
    r = post(server, "/form-then-data", files=files)
    assert "read req.data before req.form" in r.json()["error"]
    r = post(server, "/json-or-form", json={"x": 1})
    assert r.json() == {"form": {}, "json": {"x": 1}}


# -- the test client carries cookies -----------------------------------------------------------


@pytest.mark.parametrize("use_requests", [True, False])
def test_test_client_cookie_jar_reaches_websocket(tree, use_requests):
    env = {"STATIC_DIR": str(tree)}
    with TestClient("httpkit_app:app", cwd=APPS, env=env, use_requests=use_requests) as client:
        with pytest.raises(WebSocketRejected) as rejected:
            client.websocket_connect("/me")
        assert rejected.value.status == 401
        assert client.post("/login", data={"user": "ann"}).status_code == 200
        assert client.get("/cookies").json() == {"user": "ann"}  # later HTTP calls
        assert client.cookie_header("/me") == "user=ann"
        with client.websocket_connect("/me") as ws:
            assert ws.receive_json() == {"user": "ann"}
        # a Cookie header the test gives wins over the jar
        with pytest.raises(WebSocketRejected):
            client.websocket_connect("/me", headers={"Cookie": "other=1"})
