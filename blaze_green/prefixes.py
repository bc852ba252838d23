"""Path prefixes: how one is written, and which of several a path falls under.

`app.mount` and `app.static` both attach something at a literal path prefix. A path falls
under a prefix when it is the prefix or continues it after a '/' (so '/static' covers
'/static/app.css' but not '/statics'); '/' covers every path; of several prefixes that cover a
path the longest wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

__all__ = ["PrefixTable", "check_prefix"]

T = TypeVar("T")


def check_prefix(prefix: Any, what: str) -> str:
    """`prefix` if it can be a `what` ("mount prefix", "static prefix"), else a TypeError or
    ValueError saying what to write instead."""
    if not isinstance(prefix, str):
        raise TypeError(f"a {what} must be a str such as '/' or '/legacy', not {prefix!r}")
    if not prefix.startswith("/"):
        raise ValueError(f"a {what} must start with '/': write '/{prefix}', not {prefix!r}")
    if prefix != "/" and prefix.endswith("/"):
        raise ValueError(
            f"a {what} has no trailing slash: write {prefix.rstrip('/') or '/'!r}, "
            f"not {prefix!r} (it matches {prefix.rstrip('/')!r} and everything under it)"
        )
    if "//" in prefix:
        raise ValueError(f"a {what} has no empty segment ('//'): {prefix!r}")
    if any(c in prefix for c in "?#"):
        raise ValueError(f"a {what} is a path, without '?' or '#': {prefix!r}")
    if any(seg[:1] in (":", "*") for seg in prefix.split("/")):
        raise ValueError(
            f"a {what} is a literal path, not a route pattern (':name', '*name'): {prefix!r}"
        )
    return prefix


class PrefixTable(Generic[T]):
    """Values at prefixes, found by the longest prefix covering a path.

    Keys are prefixes as paths are compared with them ("" for "/": it covers everything);
    a mounted app's are PEP 3333 text, to match PATH_INFO."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[tuple[str, T]] = []  # longest key first

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __iter__(self) -> Iterator[T]:
        return (value for _, value in self._entries)

    def add(self, key: str, value: T) -> bool:
        """Put `value` at `key`; False (and nothing changes) when the key is taken."""
        if any(k == key for k, _ in self._entries):
            return False
        self._entries.append((key, value))
        self._entries.sort(key=lambda entry: len(entry[0]), reverse=True)
        return True

    def find(self, path: str) -> T | None:
        """The value at the longest key covering `path`, or None."""
        for key, value in self._entries:
            if not key or path == key or path.startswith(key + "/"):
                return value
        return None
