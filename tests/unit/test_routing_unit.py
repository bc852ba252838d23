"""Router, in-process: matching, conversions, 404/405 data and every rejected pattern."""

import pytest

from blaze_green.routing import RouteError, Router


def plain(req): ...
def one(req, id: int): ...
def as_float(req, x: float): ...
def as_str(req, id: str): ...
def untyped(req, id): ...
def rest(req, path): ...
def rest_str(req, path: str): ...
def id_and_rest(req, id: int, path): ...
def kwargs_only(req, **kw): ...


# -- static ------------------------------------------------------------------------------


def test_static_exact_match_only():
    r = Router()
    r.add("/a/b", "GET", "ab", plain)
    r.add("/a/b/", "GET", "ab/", plain)
    assert r.lookup("/a/b", "GET") == ("ab", {}, set())
    assert r.lookup("/a/b/", "GET") == ("ab/", {}, set())
    assert r.lookup("/a", "GET") == (None, {}, set())
    assert r.lookup("/a/bc", "GET") == (None, {}, set())
    assert r.lookup("/A/B", "GET") == (None, {}, set())


def test_static_wins_over_a_pattern_registered_first():
    r = Router()
    r.add("/u/:id", "GET", "dyn", untyped)
    r.add("/u/me", "GET", "me", plain)
    assert r.lookup("/u/me", "GET") == ("me", {}, set())
    assert r.lookup("/u/you", "GET") == ("dyn", {"id": "you"}, set())


def test_static_routes_are_not_patterns():
    r = Router()
    r.add("/a", "GET", 1, plain)
    r.add("/", "GET", 2, plain)
    assert r.patterns() == frozenset()
    assert not r.is_pattern("/a")


# -- :name -------------------------------------------------------------------------------


def test_name_matches_exactly_one_non_empty_segment():
    r = Router()
    r.add("/u/:id", "GET", "u", untyped)
    assert r.lookup("/u/7", "GET") == ("u", {"id": "7"}, set())
    assert r.lookup("/u/a b", "GET") == ("u", {"id": "a b"}, set())
    for path in ("/u", "/u/", "/u/7/", "/u/7/x", "/x/7"):
        assert r.lookup(path, "GET")[0] is None, path


def test_patterns_match_in_registration_order():
    r = Router()
    r.add("/p/:a", "GET", "first", lambda req, a: None)
    r.add("/p/:b", "GET", "second", lambda req, b: None)
    assert r.lookup("/p/x", "GET") == ("first", {"a": "x"}, set())
    assert [route.pattern for route, _ in r.find("/p/x")] == ["/p/:a", "/p/:b"]


def test_several_names_and_literals_between():
    def h(req, org, repo, n: int): ...

    r = Router()
    r.add("/:org/:repo/issues/:n", "GET", "issue", h)
    assert r.lookup("/bg/core/issues/12", "GET") == (
        "issue",
        {"org": "bg", "repo": "core", "n": 12},
        set(),
    )
    assert r.lookup("/bg/core/pulls/12", "GET")[0] is None
    assert r.lookup("/bg//issues/12", "GET")[0] is None


# -- conversions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected", [("/n/7", 7), ("/n/-3", -3), ("/n/007", 7), ("/n/1_000", 1000)]
)
def test_int_conversion(path, expected):
    r = Router()
    r.add("/n/:id", "GET", "n", one)
    handler, kwargs, _ = r.lookup(path, "GET")
    assert handler == "n" and kwargs == {"id": expected} and type(kwargs["id"]) is int


@pytest.mark.parametrize("path", ["/n/x", "/n/1.5", "/n/1e3", "/n/%20"])
def test_bad_int_is_a_404(path):
    r = Router()
    r.add("/n/:id", "GET", "n", one)
    assert r.lookup(path, "GET") == (None, {}, set())  # no allowed methods: the app answers 404
    assert r.find(path) == []


def test_float_conversion():
    r = Router()
    r.add("/f/:x", "GET", "f", as_float)
    assert r.lookup("/f/1.5", "GET") == ("f", {"x": 1.5}, set())
    assert r.lookup("/f/2", "GET")[1] == {"x": 2.0}
    assert r.lookup("/f/abc", "GET") == (None, {}, set())


def test_str_and_unannotated_stay_str():
    r = Router()
    r.add("/s/:id", "GET", "s", as_str)
    r.add("/t/:id", "GET", "t", untyped)
    assert r.lookup("/s/12", "GET")[1] == {"id": "12"}
    assert r.lookup("/t/12", "GET")[1] == {"id": "12"}


def test_string_annotations_are_understood():
    def h(req, id: "int"): ...  # noqa: F821 - as under `from __future__ import annotations`

    r = Router()
    r.add("/q/:id", "GET", "q", h)
    assert r.lookup("/q/5", "GET")[1] == {"id": 5}


def test_each_handler_converts_with_its_own_annotations():
    r = Router()
    r.add("/item/:id", "GET", "get", one)
    r.add("/item/:id", "DELETE", "del", as_str)
    assert r.lookup("/item/4", "GET") == ("get", {"id": 4}, set())
    assert r.lookup("/item/4", "DELETE") == ("del", {"id": "4"}, set())
    # GET cannot take "x"; DELETE can: 405 that names DELETE only
    assert r.lookup("/item/x", "GET") == (None, {}, {"DELETE"})
    assert r.lookup("/item/x", "DELETE") == ("del", {"id": "x"}, set())


def test_handler_without_signature_check():
    r = Router()
    r.add("/ws/:room", "WS", "ws")  # no signature_of: every value is a str
    assert r.find("/ws/9")[0][1] == {"room": "9"}


def test_handler_taking_kwargs_accepts_any_name():
    r = Router()
    r.add("/k/:anything", "GET", "k", kwargs_only)
    assert r.lookup("/k/v", "GET") == ("k", {"anything": "v"}, set())


# -- *name -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, value",
    [
        ("/files/a", "a"),
        ("/files/a/b/c.txt", "a/b/c.txt"),
        ("/files/a/", "a/"),
        ("/files/a//b", "a//b"),
        ("/files/:x/*y", ":x/*y"),
    ],
)
def test_rest_matches_the_rest_of_the_path(path, value):
    r = Router()
    r.add("/files/*path", "GET", "f", rest)
    assert r.lookup(path, "GET") == ("f", {"path": value}, set())


@pytest.mark.parametrize("path", ["/files", "/files/", "/files//etc/passwd", "/filesx/a", "/"])
def test_rest_needs_a_non_empty_rest_not_starting_with_a_slash(path):
    r = Router()
    r.add("/files/*path", "GET", "f", rest)
    assert r.lookup(path, "GET") == (None, {}, set())


def test_rest_at_the_root_and_after_names():
    r = Router()
    r.add("/u/:id/f/*path", "GET", "both", id_and_rest)
    r.add("/*path", "GET", "all", rest_str)
    assert r.lookup("/u/3/f/x/y", "GET") == ("both", {"id": 3, "path": "x/y"}, set())
    assert r.lookup("/u/x/f/y", "GET") == ("all", {"path": "u/x/f/y"}, set())  # bad int: next
    assert r.lookup("/anything/at/all", "GET") == ("all", {"path": "anything/at/all"}, set())
    assert r.lookup("/", "GET") == (None, {}, set())


def test_rest_with_prefix_rejects_other_paths_before_splitting():
    r = Router()
    r.add("/static/*path", "GET", "s", rest)
    route = r.find("/static/x")[0][0]
    assert route.prefix == "/static/"
    assert route.match("/other/x", ["other", "x"]) is None
    # the prefix is checked first: a path without it is rejected even with matching parts
    assert route.match("/nope", ["static", "x"]) is None


@pytest.mark.parametrize("hint", [int, float, list])
def test_rest_annotated_other_than_str_is_an_error(hint):
    def h(req, path): ...

    h.__annotations__ = {"path": hint}
    with pytest.raises(RouteError, match=r"\*path is the rest of the path, always a str"):
        Router().add("/f/*path", "GET", 1, h)


# -- 405 data ----------------------------------------------------------------------------


def test_allowed_methods_static_and_dynamic():
    r = Router()
    r.add("/a", "GET", 1, plain)
    r.add("/a", "POST", 2, plain)
    r.add("/u/:id", "PUT", 3, one)
    r.add("/u/:id", "PATCH", 4, one)
    r.add("/:x/:y", "DELETE", 5, lambda req, x, y: None)
    assert r.lookup("/a", "PUT") == (None, {}, {"GET", "POST"})
    assert r.lookup("/u/1", "GET") == (None, {}, {"PUT", "PATCH", "DELETE"})
    assert r.lookup("/u/x", "GET") == (None, {}, {"DELETE"})  # /u/:id does not take "x"
    assert r.lookup("/u/1", "PATCH") == (4, {"id": 1}, set())
    assert r.lookup("/zz", "GET") == (None, {}, set())


def test_same_method_twice_is_an_error():
    r = Router()
    r.add("/u/:id", "GET", 1, one)
    with pytest.raises(RouteError, match="GET /u/:id is already routed"):
        r.add("/u/:id", "GET", 2, one)
    r.add("/u/:id", "POST", 3, one)  # another method on the same pattern is fine
    assert r.patterns() == {"/u/:id"}


# -- patterns() / is_pattern() -----------------------------------------------------------


def test_patterns_and_is_pattern():
    r = Router()
    r.add("/static", "GET", 0, plain)
    r.add("/chat/:room", "WS", 1)
    r.add("/chat/:room", "GET", 2, lambda req, room: None)
    r.add("/files/*path", "GET", 3, rest)
    assert r.patterns() == frozenset({"/chat/:room", "/files/*path"})
    assert r.is_pattern("/chat/:room")
    assert r.is_pattern("/files/*path")
    for path in ("/chat/lobby", "/chat/:other", "/static", "/files/a", "/chat/:room/"):
        assert not r.is_pattern(path), path


# -- rejected patterns -------------------------------------------------------------------

SYNTAX = "':name' for one segment, and '\\*name' as the last segment"


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("no-slash", "must start with '/'"),
        ("", "must start with '/'"),
        ("/a/*", r"a bare '\*' needs a name"),
        ("/*", r"a bare '\*' needs a name"),
        ("/a/*p/b", r"'\*p' must be the last segment"),
        ("/a/*p/", r"'\*p' must be the last segment"),
        ("/*a/*b", r"'\*a' must be the last segment"),
        ("/a/x*y", r"in 'x\*y', ':' and '\*' may only start a segment"),
        ("/a/x*", r"may only start a segment"),
        ("/a/b:c", r"in 'b:c', ':' and '\*' may only start a segment"),
        ("/a/b:", "may only start a segment"),
        ("/a/:", "a bare ':' needs a name"),
        ("/a/:1x", "the name after ':' must be a Python identifier"),
        ("/a/:a-b", "the name after ':' must be a Python identifier"),
        ("/a/:a:b", "the name after ':' must be a Python identifier"),
        ("/a/::a", "the name after ':' must be a Python identifier"),
        ("/a/*p-q", r"the name after '\*' must be a Python identifier"),
        ("/a/*p.txt", r"the name after '\*' must be a Python identifier"),
        ("/a/:*p", "the name after ':' must be a Python identifier"),
        ("/a/:x/:x", "the name 'x' appears twice"),
        ("/a/:x/*x", "the name 'x' appears twice"),
        ("/a?b=1", "'\\?' and '#' cannot be in a route"),
        ("/a#frag", "'\\?' and '#' cannot be in a route"),
    ],
)
def test_rejected_patterns(pattern, message):
    r = Router()
    with pytest.raises(RouteError, match=message) as info:
        r.add(pattern, "GET", 1)
    assert isinstance(info.value, ValueError)
    assert r.patterns() == frozenset() and r.lookup(pattern or "/", "GET")[0] is None


@pytest.mark.parametrize(
    "pattern",
    ["/a/*p/b", "/a/x*y", "/a/b:c", "/a/:1x", "/a/*", "/u/<id>", "/x-<id>"],
)
def test_rejections_say_what_is_allowed(pattern):
    with pytest.raises(RouteError, match=SYNTAX):
        Router().add(pattern, "GET", 1)


@pytest.mark.parametrize(
    "pattern, advice",
    [
        ("/users/<int:id>", r"use /users/:id with an int annotation \(id: int\)"),
        ("/users/<float:x>", r"use /users/:x with a float annotation \(x: float\)"),
        ("/users/<id>", "use /users/:id."),
        ("/users/<string:name>", "use /users/:name."),
        ("/files/<path:p>", r"use /files/\*p."),
        ("/x/<uuid:u>", "use /x/:u with u: str, checked in the handler"),
        ("/users/{id}", "use /users/:id."),
        ("/users/{id:int}", r"use /users/:id with an int annotation \(id: int\)"),
        ("/files/{p:path}", r"use /files/\*p."),
        ("/a/<int:x>/{y:int}", "use /a/:x/:y with an int annotation .* and an int annotation"),
    ],
)
def test_flask_and_starlette_syntax_names_the_blaze_form(pattern, advice):
    with pytest.raises(RouteError, match="Flask/Starlette syntax") as info:
        Router().add(pattern, "GET", 1)
    assert info.match(advice)


@pytest.mark.parametrize("pattern", ["/x-<id>", "/a/<int:x>/b:c", "/a/{x", "/a/b>"])
def test_flask_syntax_without_a_clean_translation_gives_no_advice(pattern):
    with pytest.raises(RouteError, match="Flask/Starlette syntax") as info:
        Router().add(pattern, "GET", 1)
    assert "; use " not in str(info.value)


def test_a_non_str_pattern_is_a_type_error():
    with pytest.raises(TypeError, match="must be a str"):
        Router().add(b"/a", "GET", 1)  # type: ignore[arg-type]


def test_handler_signature_errors():
    r = Router()
    with pytest.raises(RouteError, match="has no parameter 'nope' for the :nope path segment"):
        r.add("/a/:nope", "GET", 1, plain)
    with pytest.raises(RouteError, match=r"has no parameter 'path' for the \*path path segment"):
        r.add("/f/*path", "GET", 1, plain)

    def listy(req, id: list): ...

    with pytest.raises(RouteError, match=":id may be annotated int, float or str"):
        r.add("/c/:id", "GET", 1, listy)
    # a failed registration leaves nothing behind
    assert r.patterns() == frozenset()
    assert r.lookup("/a/x", "GET") == (None, {}, set())
