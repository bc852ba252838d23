"""Router: static and `:name` routes, conversions, 405 data (in-process)."""

import pytest

from blaze_green.routing import RouteError, Router


def handler_int(req, id: int): ...
def handler_two(req, a, b: float): ...
def handler_plain(req): ...


def test_static_and_dynamic():
    r = Router()
    r.add("/a", "GET", "static", handler_plain)
    r.add("/u/:id", "GET", "int", handler_int)
    r.add("/x/:a/y/:b", "POST", "two", handler_two)
    assert r.lookup("/a", "GET") == ("static", {}, set())
    assert r.lookup("/u/7", "GET") == ("int", {"id": 7}, set())
    assert r.lookup("/x/s/y/1.5", "POST") == ("two", {"a": "s", "b": 1.5}, set())
    assert r.lookup("/u/x", "GET") == (None, {}, set())
    assert r.lookup("/u/7", "POST") == (None, {}, {"GET"})
    assert r.lookup("/u/", "GET")[0] is None


def test_bad_routes():
    r = Router()
    with pytest.raises(RouteError):
        r.add("no-slash", "GET", 1, handler_plain)
    with pytest.raises(RouteError, match="no parameter 'nope'"):
        r.add("/a/:nope", "GET", 1, handler_plain)
    r.add("/b", "GET", 1, handler_plain)
    with pytest.raises(RouteError, match="already routed"):
        r.add("/b", "GET", 2, handler_plain)

    def bad_hint(req, id: list): ...

    with pytest.raises(RouteError, match="int, float or str"):
        r.add("/c/:id", "GET", 1, bad_hint)


def handler_rest(req, path): ...
def handler_id_rest(req, id: int, path: str): ...


def test_rest_segment():
    r = Router()
    r.add("/files/*path", "GET", "files", handler_rest)
    r.add("/u/:id/f/*path", "GET", "both", handler_id_rest)
    assert r.lookup("/files/a", "GET") == ("files", {"path": "a"}, set())
    assert r.lookup("/files/a/b/c.txt", "GET") == ("files", {"path": "a/b/c.txt"}, set())
    assert r.lookup("/files/a/", "GET") == ("files", {"path": "a/"}, set())
    for path in ("/files", "/files/", "/files//etc/passwd", "/filesx/a"):
        assert r.lookup(path, "GET") == (None, {}, set()), path
    assert r.lookup("/u/3/f/x/y", "GET") == ("both", {"id": 3, "path": "x/y"}, set())
    assert r.lookup("/u/x/f/y", "GET") == (None, {}, set())


def test_patterns_and_is_pattern():
    r = Router()
    r.add("/a", "GET", 1, handler_plain)
    r.add("/chat/:room", "WS", 2)
    r.add("/files/*path", "GET", 3, handler_rest)
    assert r.patterns() == {"/chat/:room", "/files/*path"}
    assert r.is_pattern("/chat/:room") and r.is_pattern("/files/*path")
    assert not r.is_pattern("/chat/lobby") and not r.is_pattern("/a")


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("/a/*", "bare '\\*' needs a name"),
        ("/a/*p/b", "must be the last segment"),
        ("/a/x*y", "may only start a segment"),
        ("/a/b:c", "may only start a segment"),
        ("/a/:", "bare ':' needs a name"),
        ("/a/:1x", "must be a Python identifier"),
        ("/a/*p-q", "must be a Python identifier"),
        ("/users/<int:id>", "use /users/:id with an int annotation"),
        ("/files/<path:p>", "use /files/\\*p"),
        ("/u/{id:int}", "use /u/:id with an int annotation"),
        ("/f/{p:path}", "use /f/\\*p"),
    ],
)
def test_rejected_patterns(pattern, message):
    with pytest.raises(RouteError, match=message):
        Router().add(pattern, "GET", 1)


def test_rest_is_a_str():
    def typed(req, path: int): ...

    with pytest.raises(RouteError, match="always a str"):
        Router().add("/f/*path", "GET", 1, typed)
