"""The opening handshake, decided before any `101` is sent (RFC 6455 section 4.2).

Pure functions over the WSGI environ: each rejection is an HTTPError carrying the status, a
message that says what to fix, and (for a malformed handshake) `Sec-WebSocket-Version: 13`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ..config import OriginPolicy
from ..http import HTTPError, Request
from .extensions import Deflate, ExtensionHeaderError, negotiate_deflate

__all__ = [
    "GUID",
    "UPGRADE_KEY",
    "accept_key",
    "is_upgrade_request",
    "validate",
    "origin_allowed",
    "select_deflate",
    "select_subprotocol",
    "response_headers",
]

# RFC 6455 section 1.3: the fixed GUID appended to the client's key.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The environ key under which our server handlers put the `upgrade` callable: called once every
# check has passed, it sends the `101` and hands over the socket (see blaze_green.server).
UPGRADE_KEY = "blaze_green.upgrade"
VERSION_HEADER = ("Sec-WebSocket-Version", "13")


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (section 4.2.2 item 5.4)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def is_upgrade_request(environ: dict[str, Any]) -> bool:
    return environ.get("HTTP_UPGRADE", "").lower() == "websocket"  # type: ignore[no-any-return]


def _bad(message: str) -> HTTPError:
    return HTTPError(400, message, [VERSION_HEADER])


def validate(environ: dict[str, Any]) -> str:
    """Check the client's opening handshake (section 4.2.1); return its key."""
    if environ.get("REQUEST_METHOD") != "GET":
        raise _bad(f"a WebSocket handshake must use GET, not {environ.get('REQUEST_METHOD')}")
    if environ.get("SERVER_PROTOCOL", "HTTP/1.1") not in ("HTTP/1.1", "HTTP/2", "HTTP/2.0"):
        raise _bad("a WebSocket handshake needs HTTP/1.1")
    connection = {t.strip().lower() for t in environ.get("HTTP_CONNECTION", "").split(",")}
    if "upgrade" not in connection:
        raise _bad("a WebSocket handshake needs 'Connection: Upgrade'")
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip()
    if version != "13":
        shown = version or "missing"
        raise _bad(f"Sec-WebSocket-Version {shown} is not supported; use 13 (RFC 6455)")
    key: str = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 16:
        raise _bad("Sec-WebSocket-Key must be 16 random bytes in base64 (RFC 6455 section 4.1)")
    return key


def _origin_key(netloc: str, scheme: str) -> tuple[bool, str]:
    """(secure, host:port) of an origin or of the request: both must match for same origin.

    The scheme counts even when both ports are explicit: `http://h:80` is not the origin of an
    https request to `h:80` (RFC 6454 4: an origin is scheme, host and port)."""
    secure = scheme.lower() in ("https", "wss")
    netloc = netloc.strip().lower()
    if ":" in netloc.rsplit("]", 1)[-1]:
        return secure, netloc
    return secure, f"{netloc}:{443 if secure else 80}"


def origin_allowed(policy: OriginPolicy, origin: str | None, req: Request) -> bool:
    """Whether a browser's Origin may open a session (no Origin header: not a browser, allowed).

    `policy` None means same origin: the Origin's scheme and host:port equal the request's
    (`wsgi.url_scheme` and the Host header).
    """
    if origin is None:
        return True
    if policy == "*":
        return True
    if callable(policy):
        return bool(policy(origin, req))
    if policy is None:
        if origin == "null":
            return False
        parts = urlsplit(origin)
        host = req.environ.get("HTTP_HOST", "")
        scheme = req.environ.get("wsgi.url_scheme", "http")
        return bool(parts.netloc) and _origin_key(parts.netloc, parts.scheme) == _origin_key(
            host, scheme
        )
    allowed = {policy} if isinstance(policy, str) else set(policy)
    return origin in allowed or "*" in allowed


def select_subprotocol(offered_header: str | None, accepted: Iterable[str] | None) -> str | None:
    """The first protocol the client offers that the route accepts (section 4.2.2 item 5.5)."""
    if not offered_header or not accepted:
        return None
    accepted = set(accepted)
    for proto in offered_header.split(","):
        proto = proto.strip()
        if proto in accepted:
            return proto
    return None


def select_deflate(header: str | None) -> Deflate | None:
    """The permessage-deflate parameters to accept (RFC 7692), or None; 400 for a header that
    does not parse (RFC 6455 9.1)."""
    try:
        return negotiate_deflate(header)
    except ExtensionHeaderError as exc:
        raise _bad(f"malformed Sec-WebSocket-Extensions header: {exc}") from None


def response_headers(
    key: str, subprotocol: str | None, deflate: Deflate | None = None
) -> list[tuple[str, str]]:
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if subprotocol:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    if deflate is not None:
        headers.append(("Sec-WebSocket-Extensions", deflate.response()))
    return headers
