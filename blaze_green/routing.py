"""Path routing with Blaze-style `:name` and `*name` segments.

A pattern is `/` followed by segments separated by `/`. Each segment is one of:

- a literal (`users`, `v1`, or empty, as in a trailing slash): matches itself exactly; it may not
  contain `:` or `*`;
- `:name`: matches one non-empty segment;
- `*name`, as the last segment only: matches the rest of the path, slashes included
  (`/files/*path` matches `/files/a/b.txt` with `path="a/b.txt"`).

`name` is a Python identifier and appears once per pattern. Anything else (`*` elsewhere, a
bare `*` or `:`, `:`/`*` inside a segment, Flask's `<int:id>` or Starlette's `{id:int}`, `?`
or `#`) is a `RouteError` (a `ValueError`) when the route is registered, with a message that
says what to write instead.

`*name` matches at least one character, and the rest may not start with `/`: `/files/*path`
matches neither `/files`, `/files/` nor `/files//etc/passwd`. This is Flask's (werkzeug's)
`<path:...>` converter, whose regex is `[^/].*?`; Starlette's `{p:path}` (`.*`) would also
match `/files/` with `path=""`. The non-empty rule is the same as for `:name`, and the leading
`/` rule keeps `os.path.join(root, path)` inside `root`. Register `/files/` separately if
it should answer too. Trailing slashes are kept (`/files/a/` gives `path="a/"`).

Conversions: a `:name` whose handler parameter is annotated `int` or `float` is converted, and a
value that does not convert makes the route not match for that handler (so the request ends as a
404, as for an unknown path, or a 405 if another method's handler on the same pattern takes the
value). A `*name` value is always a `str`. Each handler's own annotations decide its conversions,
so `GET /item/:id` with `id: int` and `DELETE /item/:id` with `id: str` both work.

Matching: static paths (no `:`/`*` segment) are one dict lookup; patterns are tried in
registration order, each rejecting first on the cheap checks (the literal text before its first
dynamic segment, then the segment count).
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Router", "Route", "RouteError"]

H = TypeVar("H")

Converter = Callable[[str], Any]

_CONVERTERS: dict[Any, Converter] = {int: int, float: float, str: str}
# Annotations left as strings (`from __future__ import annotations` when get_type_hints fails).
_CONVERTERS.update({"int": int, "float": float, "str": str})

_SYNTAX = (
    "a route is '/' then segments: literal text, ':name' for one segment, and '*name' as the "
    "last segment for the rest of the path (name a Python identifier)"
)

# Flask/werkzeug `<conv:name>` / `<conv(args):name>` / `<name>`; Starlette `{name}` / `{name:conv}`
_FLASK = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_STARLETTE = re.compile(r"\{(\w+)(?::(\w+))?\}")


class RouteError(ValueError):
    """A route pattern or handler signature that cannot work."""


@dataclass
class Route(Generic[H]):
    """One registered pattern and its handlers per method (or "WS")."""

    pattern: str
    segments: tuple[str, ...]
    literals: tuple[tuple[int, str], ...]  # (segment index, text) of the literal segments
    params: tuple[tuple[int, str], ...]  # (segment index, name) of the `:name` segments
    rest: str | None = None  # the `*name` of the last segment, if any
    prefix: str = ""  # the pattern's text before its first dynamic segment
    targets: dict[str, H] = field(default_factory=dict)  # method -> handler
    converters: dict[str, dict[str, Converter]] = field(
        default_factory=dict
    )  # method -> name -> conv

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for _, n in self.params) + ((self.rest,) if self.rest else ())

    def match(self, path: str, parts: list[str]) -> dict[str, str] | None:
        """The raw (unconverted) values if `path` (split as `parts`) has this route's shape."""
        if not path.startswith(self.prefix):
            return None
        fixed = len(self.segments) - (1 if self.rest else 0)
        if self.rest is None:
            if len(parts) != fixed:
                return None
        elif len(parts) <= fixed or not parts[fixed]:  # empty rest, or rest starting with '/'
            return None
        for i, text in self.literals:
            if parts[i] != text:
                return None
        raw: dict[str, str] = {}
        for i, name in self.params:
            value = parts[i]
            if not value:
                return None
            raw[name] = value
        if self.rest is not None:
            raw[self.rest] = "/".join(parts[fixed:])
        return raw

    def convert(self, method: str, raw: dict[str, str]) -> dict[str, Any] | None:
        """`raw` converted for `method`'s handler; None if a value does not convert."""
        convs = self.converters.get(method)
        if not convs:
            return dict(raw)
        out: dict[str, Any] = {}
        for name, value in raw.items():
            conv = convs.get(name, str)
            try:
                out[name] = value if conv is str else conv(value)
            except ValueError:
                return None
        return out


def _suggestion(pattern: str) -> str:
    """What to write instead of a Flask/Starlette pattern, or "" if there is no clear answer."""
    notes: list[str] = []

    def rewrite(conv: str | None, name: str) -> str:
        conv = (conv or "str").lower()
        if conv == "path":
            return "*" + name
        if conv in ("int", "float"):
            article = "an" if conv == "int" else "a"
            notes.append(f"{article} {conv} annotation ({name}: {conv})")
        elif conv not in ("str", "string", "default"):
            notes.append(f"{name}: str, checked in the handler (there is no {conv} converter)")
        return ":" + name

    fixed = _FLASK.sub(lambda m: rewrite(m[1], m[2]), pattern)
    fixed = _STARLETTE.sub(lambda m: rewrite(m[2], m[1]), fixed)
    if any(c in fixed for c in "<>{}"):  # not all of it was Flask/Starlette syntax
        return ""
    try:
        _parse(fixed)
    except RouteError:
        return ""
    return f"; use {fixed}" + (" with " + " and ".join(notes) if notes else "")


@dataclass
class _Parsed:
    segments: tuple[str, ...]
    literals: tuple[tuple[int, str], ...]
    params: tuple[tuple[int, str], ...]
    rest: str | None
    prefix: str


def _parse(pattern: str) -> _Parsed:
    if not isinstance(pattern, str):
        raise TypeError(f"a route path must be a str, got {type(pattern).__name__}")
    if not pattern.startswith("/"):
        raise RouteError(f"a route path must start with '/', got {pattern!r}")
    if any(c in pattern for c in "<>{}"):
        raise RouteError(
            f"bad route {pattern!r}: <...> and {{...}} are Flask/Starlette syntax, not "
            f"blaze_green's{_suggestion(pattern)}. {_SYNTAX}"
        )
    if "?" in pattern or "#" in pattern:
        raise RouteError(
            f"bad route {pattern!r}: '?' and '#' cannot be in a route, which matches the path "
            f"only, never the query string. {_SYNTAX}"
        )
    segments = tuple(pattern.split("/")[1:])
    literals: list[tuple[int, str]] = []
    params: list[tuple[int, str]] = []
    rest: str | None = None
    prefix_end: int | None = None
    seen: set[str] = set()
    offset = 1  # where the current segment starts in `pattern`
    for i, seg in enumerate(segments):
        kind = seg[:1]
        if kind in (":", "*"):
            name = seg[1:]
            what = f"{kind}name"
            if not name:
                raise RouteError(
                    f"bad route {pattern!r}: a bare {kind!r} needs a name ({what}). {_SYNTAX}"
                )
            if not name.isidentifier():
                raise RouteError(
                    f"bad route {pattern!r}: in {seg!r} the name after {kind!r} must be a Python "
                    f"identifier ({what} with letters, digits and '_'; ':' and '*' only start a "
                    f"segment). {_SYNTAX}"
                )
            if kind == "*" and i != len(segments) - 1:
                raise RouteError(
                    f"bad route {pattern!r}: {seg!r} must be the last segment (*name matches the "
                    f"rest of the path). {_SYNTAX}"
                )
            if name in seen:
                raise RouteError(f"bad route {pattern!r}: the name {name!r} appears twice")
            seen.add(name)
            if prefix_end is None:
                prefix_end = offset
            if kind == ":":
                params.append((i, name))
            else:
                rest = name
        elif ":" in seg or "*" in seg:
            raise RouteError(
                f"bad route {pattern!r}: in {seg!r}, ':' and '*' may only start a segment "
                f"(':name', '*name'). {_SYNTAX}"
            )
        else:
            literals.append((i, seg))
        offset += len(seg) + 1
    prefix = pattern[: prefix_end if prefix_end is not None else len(pattern)]
    return _Parsed(segments, tuple(literals), tuple(params), rest, prefix)


def _converters_for(
    handler: Callable[..., Any] | None, params: list[str], rest: str | None
) -> dict[str, Converter]:
    """name -> converter for `handler`'s parameters; RouteError if it cannot take them."""
    names = [*params, *([rest] if rest else [])]
    if handler is None:
        return {}
    try:
        hints: dict[str, Any] = typing.get_type_hints(handler)
    except Exception:
        hints = dict(getattr(handler, "__annotations__", None) or {})
    try:
        sig_params = inspect.signature(handler).parameters
    except (TypeError, ValueError):
        sig_params = inspect.Signature().parameters
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig_params.values())
    out: dict[str, Converter] = {}
    for name in names:
        segment = f"*{name}" if name == rest else f":{name}"
        if sig_params and name not in sig_params and not accepts_kwargs:
            raise RouteError(
                f"handler {getattr(handler, '__name__', handler)!r} has no parameter {name!r} "
                f"for the {segment} path segment"
            )
        hint = hints.get(name, str)
        try:
            conv = _CONVERTERS.get(hint)
        except TypeError:  # an unhashable annotation
            conv = None
        if name == rest:
            if conv is not str:
                raise RouteError(
                    f"{segment} is the rest of the path, always a str: annotate {name} as str "
                    f"or not at all, not {hint!r}"
                )
        elif conv is None:
            raise RouteError(f"{segment} may be annotated int, float or str, not {hint!r}")
        else:
            out[name] = conv
    return out


class Router(Generic[H]):
    """Routes by path and method: `add()` patterns, `lookup()` requests."""

    def __init__(self) -> None:
        self._static: dict[str, Route[H]] = {}
        self._dynamic: list[Route[H]] = []
        self._by_pattern: dict[str, Route[H]] = {}  # the dynamic routes, by pattern

    def add(self, pattern: str, method: str, handler: H, signature_of: Any = None) -> None:
        """Route `method` on `pattern` to `handler`; `signature_of` (a callable) is checked
        for the parameters and decides the conversions. RouteError if it cannot work."""
        parsed = _parse(pattern)
        route = self._static.get(pattern) or self._by_pattern.get(pattern)
        if route is not None and method in route.targets:
            raise RouteError(f"{method} {pattern} is already routed")
        convs = _converters_for(signature_of, [n for _, n in parsed.params], parsed.rest)
        if route is None:
            route = Route(
                pattern,
                parsed.segments,
                parsed.literals,
                parsed.params,
                parsed.rest,
                parsed.prefix,
            )
            if parsed.params or parsed.rest:
                self._dynamic.append(route)
                self._by_pattern[pattern] = route
            else:
                self._static[pattern] = route
        route.targets[method] = handler
        route.converters[method] = convs

    def patterns(self) -> frozenset[str]:
        """The registered dynamic patterns (those with a `:name` or `*name` segment)."""
        return frozenset(self._by_pattern)

    def is_pattern(self, path: str) -> bool:
        """Whether `path` is exactly a registered dynamic pattern (such as "/chat/:room")."""
        return path in self._by_pattern

    def _matches(self, path: str) -> Iterator[tuple[Route[H], dict[str, str]]]:
        route = self._static.get(path)
        if route is not None:
            yield route, {}
        if self._dynamic:
            parts = path.split("/")[1:]
            for route in self._dynamic:
                raw = route.match(path, parts)
                if raw is not None:
                    yield route, raw

    def find(self, path: str) -> list[tuple[Route[H], dict[str, Any]]]:
        """Every route with a handler for `path`, in matching order, with its parameters
        converted for the first of its methods whose conversions succeed."""
        found: list[tuple[Route[H], dict[str, Any]]] = []
        for route, raw in self._matches(path):
            for method in route.targets:
                kwargs = route.convert(method, raw)
                if kwargs is not None:
                    found.append((route, kwargs))
                    break
        return found

    def lookup(self, path: str, method: str) -> tuple[H | None, dict[str, Any], set[str]]:
        """(handler, kwargs, methods allowed on this path); handler None when not routed."""
        handler, kwargs, allowed, _ = self.resolve(path, method)
        return handler, kwargs, allowed

    def resolve(
        self, path: str, method: str
    ) -> tuple[H | None, dict[str, Any], set[str], str | None]:
        """`lookup` plus the matching route's pattern (None when no route has this method)."""
        route = self._static.get(path)
        if route is not None:  # static routes win; one dict lookup
            target = route.targets.get(method)
            if target is not None:
                return target, {}, set(), route.pattern
        allowed: set[str] = set()
        for route, raw in self._matches(path):
            target = route.targets.get(method)
            if target is not None:
                kwargs = route.convert(method, raw)
                if kwargs is not None:
                    return target, kwargs, set(), route.pattern
            allowed.update(m for m in route.targets if route.convert(m, raw) is not None)
        return None, {}, allowed, None
