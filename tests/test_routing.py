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
