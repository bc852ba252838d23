"""Request header parsing for the server's handler: strict, bounded, and far cheaper than pywsgi's.

gevent's pywsgi parses request headers with `http.client.parse_headers`, which runs the
`email` package's feed parser on every request: about a quarter of the CPU time of a small
keep-alive request (py-spy on `GET /hello`). `RequestHeaders` reads the same lines itself and
offers the part of that object's interface pywsgi and gevent-websocket use. It is stricter
where RFC 9112 asks a server to be: an obsolete line folding, a space before the colon or a
line without a colon is refused (400), not folded or guessed at.

Limits (see docs/security.md, "HTTP limits"): one field line at most `MAX_HEADER_LINE` bytes,
the whole block at most `MAX_HEADER_BYTES`, at most `MAX_HEADERS` fields; beyond any of them
the handler answers 431 and closes. A maximal request therefore costs at most ~32 KiB of raw
lines plus their parsed strings, whatever the client sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, TypeVar, overload

__all__ = ["RequestHeaders", "MAX_HEADER_LINE", "MAX_HEADER_BYTES", "MAX_HEADERS"]

MAX_HEADER_LINE = 8192  # one field line, CRLF included: nginx's large_client_header_buffers 8k
MAX_HEADER_BYTES = 32768  # the whole block: nginx's 4 x 8k
MAX_HEADERS = 100  # http.client's limit
_T = TypeVar("_T")
_END = (b"\r\n", b"\n")
_TOO_LARGE = f"Header fields over {MAX_HEADER_LINE} bytes a line or {MAX_HEADER_BYTES} in all"
# RFC 9110: the name is a token; the value has no CR, LF or NUL; surrounding blanks are not in it
_FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n\0]*?)[ \t]*\r?\n\Z")
# Fields whose every occurrence matters for framing (counted, not only the first kept)
_FRAMING = frozenset(("host", "content-length", "transfer-encoding"))


class RequestHeaders:
    """The request's header lines, in order; lookups ignore case.

    `status` is "" when the block parsed, else why not; `code` is then the status to answer
    (400, or 431 for a block over the limits), or 0 when the connection ended before the
    blank line (nothing to answer: the handler just closes).
    """

    __slots__ = ("_items", "first", "_repeats", "status", "code")

    def __init__(self, rfile: Any, *_: Any) -> None:
        self.status = ""
        self.code = 0
        self._items: list[tuple[str, str]] = []
        self.first: dict[str, str] = {}  # lower-case name -> its first value (for lookups)
        self._repeats: list[tuple[str, str]] = []  # later occurrences of _FRAMING fields
        readline = rfile.readline
        items = self._items
        first = self.first
        total = 0
        while True:
            line = readline(MAX_HEADER_LINE + 1)
            if line in _END:
                return
            total += len(line)
            if len(line) > MAX_HEADER_LINE or total > MAX_HEADER_BYTES:
                self._fail(431, _TOO_LARGE)
                return
            if not line.endswith(b"\n"):
                self._fail(0, "Connection closed in the header block")
                return
            if len(items) >= MAX_HEADERS:
                self._fail(431, f"More than {MAX_HEADERS} headers")
                return
            field = _FIELD_LINE.match(line)
            if field is None:
                # also obsolete line folding: the line would start with a space
                self._fail(400, f"Invalid header line: {line[:100]!r}")
                return
            name = field[1].decode("latin-1")
            value = field[2].decode("latin-1")
            items.append((name, value))
            key = name.lower()
            if key not in first:
                first[key] = value
            elif key in _FRAMING:
                self._repeats.append((key, value))

    def _fail(self, code: int, status: str) -> None:
        self.code = code
        self.status = status

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: _T) -> str | _T: ...

    def get(self, name: str, default: Any = None) -> Any:
        return self.first.get(name.lower(), default)

    getheader = get

    def values(self, name: str) -> list[str]:
        """Every value of a framing field (Host, Content-Length, Transfer-Encoding), in order."""
        name = name.lower()
        first = self.first.get(name)
        if first is None:
            return []
        return [first, *(v for k, v in self._repeats if k == name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.first

    def __delitem__(self, name: str) -> None:
        name = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != name]
        self.first.pop(name, None)
        self._repeats = [(k, v) for k, v in self._repeats if k != name]

    def replace(self, name: str, value: str) -> None:
        """Every occurrence of `name` becomes one field with `value` (at the end)."""
        del self[name]
        self._items.append((name, value))
        self.first[name.lower()] = value

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    @property
    def typeheader(self) -> str | None:
        return self.first.get("content-type")

    @property
    def headers(self) -> Iterator[str]:
        """Raw-looking lines, as pywsgi's environ builder reads them."""
        for key, value in self._items:
            yield f"{key}: {value}\r\n"
