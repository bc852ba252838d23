"""app.mount() without a server: prefix checks, longest-prefix matching, environ splitting."""

import io

import pytest

from blaze_green import App
from blaze_green.mount import (
    BoundedInput,
    FileWrapper,
    Mounts,
    RequestBodyTooLarge,
    file_to_send,
)


def wsgi(name):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{name} {environ['SCRIPT_NAME']!r} {environ['PATH_INFO']!r}".encode()]

    return app


@pytest.mark.parametrize(
    "prefix, says",
    [
        ("legacy", "write '/legacy'"),
        ("/legacy/", "write '/legacy'"),
        ("/a//b", "empty segment"),
        ("/a?b", "without '?'"),
        ("/chat/:room", "not a route pattern"),
        ("/files/*rest", "not a route pattern"),
        ("", "must start with '/'"),
    ],
)
def test_a_bad_prefix_is_a_value_error_saying_what_to_write(prefix, says):
    with pytest.raises(ValueError, match="mount prefix") as info:
        App().mount(prefix, wsgi("x"))
    assert says in str(info.value)


def test_mount_refuses_non_callables_non_strings_and_duplicates():
    app = App()
    with pytest.raises(TypeError, match="WSGI app"):
        app.mount("/", object())
    with pytest.raises(TypeError, match="must be a str"):
        app.mount(b"/", wsgi("x"))
    app.mount("/legacy", wsgi("x"))
    with pytest.raises(ValueError, match="already mounted at '/legacy'"):
        app.mount("/legacy", wsgi("y"))


def test_longest_prefix_on_segment_boundaries():
    mounts = Mounts()
    for prefix in ("/", "/legacy", "/legacy/admin"):
        mounts.add(prefix, wsgi(prefix))
    found = {
        p: m.prefix
        for p in ("/", "/x", "/legacy", "/legacy/", "/legacyx", "/legacy/admin/x", "/legacy/adminx")
        if (m := mounts.find(p)) is not None
    }
    assert found == {
        "/": "/",
        "/x": "/",
        "/legacy": "/legacy",
        "/legacy/": "/legacy",
        "/legacyx": "/",
        "/legacy/admin/x": "/legacy/admin",
        "/legacy/adminx": "/legacy",
    }
    only = Mounts()
    only.add("/legacy", wsgi("l"))
    assert only.find("/legacyx") is None and only.find("/") is None


def call(app, path, method="GET", script_name="", **extra):
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status
        return lambda data: None

    environ = {
        **extra,
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": script_name,
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(b""),
    }
    body = b"".join(app(environ, start_response))
    return seen["status"], body.decode(), environ


def test_script_name_and_path_info_are_split_by_the_prefix():
    app = App()
    app.mount("/", wsgi("root"))
    app.mount("/legacy", wsgi("legacy"))
    app.mount("/ünï", wsgi("utf8"))
    assert call(app, "/a/b")[1] == "root '' '/a/b'"
    assert call(app, "/legacy")[1] == "legacy '/legacy' ''"
    assert call(app, "/legacy/a/b")[1] == "legacy '/legacy' '/a/b'"
    assert call(app, "/legacy/a", script_name="/base")[1] == "legacy '/base/legacy' '/a'"
    raw = "/ünï/x".encode().decode("latin-1")  # PEP 3333: the URL's bytes as latin-1
    assert call(app, raw)[1] == f"utf8 {raw[:-2]!r} '/x'"
    status, _, environ = call(app, "/legacy/a")
    assert environ["SCRIPT_NAME"] == "" and environ["PATH_INFO"] == "/legacy/a"  # untouched


def test_our_routes_win_over_a_mount_at_root():
    app = App()
    app.get("/hello", lambda req: "ours")
    app.mount("/", wsgi("root"))
    assert call(app, "/hello")[:2] == ("200 OK", "ours")
    assert call(app, "/hello", method="POST")[1] == "root '' '/hello'"  # not routed by us
    assert call(app, "/nothing")[1] == "root '' '/nothing'"


def test_bounded_input_raises_past_the_limit():
    stream = BoundedInput(io.BytesIO(b"a\n" * 10), 12)
    assert stream.readline() == b"a\n"
    assert stream.read(4) == b"a\na\n"
    with pytest.raises(RequestBodyTooLarge, match="limit of 12 bytes"):
        stream.read()
    assert stream.overflowed
    assert list(BoundedInput(io.BytesIO(b"x\ny\n"), 4)) == [b"x\n", b"y\n"]


def test_file_wrapper_reads_blocks_and_closes_the_file():
    f = io.BytesIO(b"z" * 200_000)
    wrapper = FileWrapper(f, 8192)
    blocks = list(wrapper)
    assert b"".join(blocks) == b"z" * 200_000 and len(blocks[0]) == 65536
    wrapper.close()
    assert f.closed


def test_max_body_size_applies_to_mounts_and_none_turns_it_off():
    limited = App(max_body_size=100)
    limited.mount("/", wsgi("root"))
    status, body, _ = call(limited, "/up", "POST", CONTENT_LENGTH="101")
    assert status.startswith("413") and "the limit is 100" in body
    assert call(limited, "/up", "POST", CONTENT_LENGTH="100")[1] == "root '' '/up'"
    unlimited = App(max_body_size=None)
    unlimited.mount("/", wsgi("root"))
    assert call(unlimited, "/up", "POST", CONTENT_LENGTH=str(10**12))[1] == "root '' '/up'"


def test_file_to_send_only_for_a_regular_file_in_a_file_wrapper(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as f:
        f.seek(3)
        assert file_to_send(FileWrapper(f)) == (f.fileno(), 3)
        assert file_to_send([b"not a wrapper"]) is None
    assert file_to_send(FileWrapper(io.BytesIO(b"x"))) is None  # no descriptor
    closed = open(path, "rb")  # noqa: SIM115
    closed.close()
    assert file_to_send(FileWrapper(closed)) is None
