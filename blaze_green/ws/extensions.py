"""permessage-deflate (RFC 7692): negotiation and the per-message inflater.

Pure code, no I/O (the shared compressor, which needs a lock, is in `outgoing.py`).
Negotiation runs before the `101`, on the `Sec-WebSocket-Extensions` header
(RFC 6455 9.1 grammar: offers separated by commas, each a token followed by `;` parameters,
with or without a value, values tokens or quoted strings).

What the server answers, and why:
- `server_no_context_takeover`, always: every message we send is compressed on its own, so the
  bytes of one broadcast are the same for every session and are compressed once, by one
  compressor shared by all sessions (RFC 7692 7.1.1.1 lets the server say so whatever the
  client offered).
- `client_no_context_takeover`, always (RFC 7692 7.1.1.2: the server may include it even when
  the client did not offer it): each client message is inflated on its own, so no session holds
  inflate state between messages.
- `server_max_window_bits=N` when the client offered it (8-15): we compress with an N-bit
  window. zlib cannot deflate with an 8-bit window, so an offer of 8 is declined (RFC 7692
  7.1.2.1: a server that cannot honour the parameter declines the offer).
- `client_max_window_bits` (with or without a value, as Chromium sends it) is accepted and not
  echoed: our inflater takes any window up to 15 bits.
An offer with an unknown, repeated or invalid parameter is declined and the next one tried
(RFC 7692 5); a header that does not parse at all is a `ValueError` (the handshake answers 400).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "Deflate",
    "ExtensionHeaderError",
    "MessageInflater",
    "negotiate_deflate",
    "parse_extensions",
    "EXTENSION",
]

EXTENSION: Final = "permessage-deflate"
# The last four bytes of a sync flush, removed from every compressed message (RFC 7692 7.2.1)
# and appended again before inflating its end (7.2.2).
TAIL: Final = b"\x00\x00\xff\xff"

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[\x20-\x7e])*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*(?:=\s*({_TOKEN}|{_QUOTED})\s*)?")
_NAME = re.compile(rf"\s*({_TOKEN})\s*")


class ExtensionHeaderError(ValueError):
    """`Sec-WebSocket-Extensions` does not follow RFC 6455 9.1."""


Offer = tuple[str, list[tuple[str, str | None]]]


def parse_extensions(header: str) -> list[Offer]:
    """The offers in a `Sec-WebSocket-Extensions` value, in order: (name, [(param, value)]);
    a quoted value is unquoted. Raises ExtensionHeaderError when it does not parse."""
    offers: list[Offer] = []
    pos, n = 0, len(header)
    while pos < n:
        m = _NAME.match(header, pos)
        if m is None:
            if not header[pos:].strip(" \t,"):
                break  # trailing commas or blanks (RFC 9110 5.6.1: empty list elements)
            raise ExtensionHeaderError(f"bad extension name at {header[pos : pos + 30]!r}")
        name, pos = m[1].lower(), m.end()
        params: list[tuple[str, str | None]] = []
        while pos < n and header[pos] == ";":
            p = _PARAM.match(header, pos + 1)
            if p is None:
                raise ExtensionHeaderError(f"bad extension parameter at {header[pos : pos + 30]!r}")
            value = p[2]
            if value is not None and value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params.append((p[1].lower(), value))
            pos = p.end()
        offers.append((name, params))
        if pos < n:
            if header[pos] != ",":
                raise ExtensionHeaderError(f"expected ',' or ';' at {header[pos : pos + 30]!r}")
            pos += 1
            while pos < n and header[pos] in " \t,":
                pos += 1
    return offers


@dataclass(frozen=True, slots=True)
class Deflate:
    """The permessage-deflate parameters a session negotiated."""

    server_max_window_bits: int = 15  # the window our compressor uses for this session
    offered_server_bits: bool = False  # the client asked for a limit: echo it

    def response(self) -> str:
        """The `Sec-WebSocket-Extensions` value of the `101`."""
        value = f"{EXTENSION}; server_no_context_takeover; client_no_context_takeover"
        if self.offered_server_bits:
            value += f"; server_max_window_bits={self.server_max_window_bits}"
        return value


def _bits(value: str | None) -> int | None:
    """A window size parameter's value: 8-15 with no leading zero (RFC 7692 7.1.2), else None."""
    if value is None or not value.isdigit() or value.startswith("0"):
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 else None


def _accept(params: list[tuple[str, str | None]]) -> Deflate | None:
    """Our answer to one permessage-deflate offer, or None to decline it."""
    seen: set[str] = set()
    server_bits: int | None = None
    for name, value in params:
        if name in seen:
            return None  # RFC 7692 7: a parameter may appear at most once
        seen.add(name)
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                return None
        elif name == "server_max_window_bits":
            server_bits = _bits(value)
            if server_bits is None:
                return None
        elif name == "client_max_window_bits":
            if value is not None and _bits(value) is None:
                return None
        else:
            return None  # an unknown parameter
    if server_bits is None:
        return Deflate()
    if server_bits < 9:
        return None  # zlib cannot deflate with an 8-bit window
    return Deflate(server_bits, offered_server_bits=True)


def negotiate_deflate(header: str | None) -> Deflate | None:
    """The first permessage-deflate offer in `header` we can honour, or None.

    Raises ExtensionHeaderError for a header that does not parse."""
    if not header:
        return None
    for name, params in parse_extensions(header):
        if name == EXTENSION:
            accepted = _accept(params)
            if accepted is not None:
                return accepted
    return None


class MessageInflater:
    """Inflates one compressed message, piece by piece, never past `limit` bytes of output.

    A compression bomb stops at the limit: each call inflates at most what is left of it, plus
    one byte to tell that the message is over it (then `TooBig` is raised)."""

    __slots__ = ("_inflater", "_left")

    class TooBig(Exception):
        pass

    def __init__(self, limit: int | None, inflater: Any = None) -> None:
        # `inflater`: one shared by every message (the peer uses context takeover).
        self._inflater = inflater if inflater is not None else zlib.decompressobj(-15)
        self._left = limit

    def inflate(self, data: bytes | bytearray | memoryview, final: bool = False) -> bytes:
        """Inflate the next piece; with `final`, the end of the message. Raises zlib.error for
        corrupt data and MessageInflater.TooBig past the limit."""
        if final:
            data = bytes(data) + TAIL
        left = self._left
        if left is None:
            return self._inflater.decompress(data)
        out = self._inflater.decompress(data, left + 1)
        if len(out) > left:
            raise MessageInflater.TooBig
        self._left = left - len(out)
        return out
