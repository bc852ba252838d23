"""Path routing with Blaze-style `:name` segments.

Static paths are one dict lookup; patterns are tried in registration order. A segment whose
handler parameter is annotated `int` or `float` is converted, and a value that does not convert
makes the route not match (so the request ends as a 404, as for an unknown path).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Router", "Route", "RouteError"]

H = TypeVar("H")

_CONVERTERS: dict[Any, Callable[[str], Any]] = {int: int, float: float, str: str}


class RouteError(ValueError):
    """A route pattern or handler signature that cannot work."""


@dataclass
class Route(Generic[H]):
    pattern: str
    segments: tuple[str, ...]
    params: tuple[tuple[int, str, Callable[[str], Any]], ...]  # (segment index, name, converter)
    targets: dict[str, H] = field(default_factory=dict)  # method (or "WS") -> handler

    def match(self, parts: list[str]) -> dict[str, Any] | None:
        if len(parts) != len(self.segments):
            return None
        kwargs: dict[str, Any] = {}
        for i, (want, got) in enumerate(zip(self.segments, parts, strict=True)):
            if want.startswith(":"):
                if not got:
                    return None
                _, name, conv = next(p for p in self.params if p[0] == i)
                try:
                    kwargs[name] = conv(got)
                except ValueError:
                    return None
            elif want != got:
                return None
        return kwargs


def _converters_for(handler: Callable[..., Any] | None, names: list[str]) -> dict[str, Callable]:
    if handler is None:
        return dict.fromkeys(names, str)
    try:
        hints = typing.get_type_hints(handler)
    except Exception:
        hints = getattr(handler, "__annotations__", {})
    try:
        sig_params = inspect.signature(handler).parameters
    except (TypeError, ValueError):
        sig_params = {}
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig_params.values())
    out = {}
    for name in names:
        if sig_params and name not in sig_params and not accepts_kwargs:
            raise RouteError(
                f"handler {getattr(handler, '__name__', handler)!r} has no parameter {name!r} "
                f"for the :{name} path segment"
            )
        hint = hints.get(name, str)
        if hint not in _CONVERTERS:
            raise RouteError(f":{name} may be annotated int, float or str, not {hint!r}")
        out[name] = _CONVERTERS[hint]
    return out


class Router(Generic[H]):
    def __init__(self) -> None:
        self._static: dict[str, Route[H]] = {}
        self._dynamic: list[Route[H]] = []

    def add(self, pattern: str, method: str, handler: H, signature_of: Any = None) -> None:
        if not pattern.startswith("/"):
            raise RouteError(f"a route path must start with '/', got {pattern!r}")
        segments = tuple(pattern.split("/")[1:])
        names = [s[1:] for s in segments if s.startswith(":")]
        if any(not n.isidentifier() for n in names):
            raise RouteError(f"bad :name segment in {pattern!r}")
        if len(set(names)) != len(names):
            raise RouteError(f"a :name appears twice in {pattern!r}")
        route = self._static.get(pattern) or next(
            (r for r in self._dynamic if r.pattern == pattern), None
        )
        if route is None:
            convs = _converters_for(signature_of, names)
            params = tuple(
                (i, s[1:], convs[s[1:]]) for i, s in enumerate(segments) if s.startswith(":")
            )
            route = Route(pattern, segments, params)
            if params:
                self._dynamic.append(route)
            else:
                self._static[pattern] = route
        if method in route.targets:
            raise RouteError(f"{method} {pattern} is already routed")
        route.targets[method] = handler

    def find(self, path: str) -> list[tuple[Route[H], dict[str, Any]]]:
        """Every route whose pattern matches `path`, with its converted parameters."""
        found: list[tuple[Route[H], dict[str, Any]]] = []
        route = self._static.get(path)
        if route is not None:
            found.append((route, {}))
        if self._dynamic:
            parts = path.split("/")[1:]
            for route in self._dynamic:
                kwargs = route.match(parts)
                if kwargs is not None:
                    found.append((route, kwargs))
        return found

    def lookup(self, path: str, method: str) -> tuple[H | None, dict[str, Any], set[str]]:
        """(handler, kwargs, methods allowed on this path); handler None when not routed."""
        route = self._static.get(path)
        if route is not None and method in route.targets:  # static routes win; one dict lookup
            return route.targets[method], {}, set()
        allowed: set[str] = set()
        for route, kwargs in self.find(path):
            target = route.targets.get(method)
            if target is not None:
                return target, kwargs, set()
            allowed.update(route.targets)
        return None, {}, allowed
