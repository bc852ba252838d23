"""Cookies: reading a request's Cookie header, writing Set-Cookie values (RFC 6265). No I/O.

Reading is lenient, as browsers and Werkzeug are: a piece without `=` or with an empty name
is skipped, not the whole header (Python's `http.cookies` drops every cookie after one bad
one); a value in double quotes loses them; the first of several same-named cookies wins
(browsers send the most specific path first). Writing is strict: a name or value a browser
would mangle or a header could be split on is a ValueError that says what to do.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import re
from typing import Any

__all__ = ["parse_cookies", "set_cookie_value", "delete_cookie_value", "SAMESITE"]

SAMESITE = ("Strict", "Lax", "None")
# RFC 6265 4.1.1: a name is an RFC 2616 token; a value is cookie-octets, optionally quoted
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*\Z")
# Path and Domain attribute values: anything visible but ';' (which would end the attribute)
_ATTR = re.compile(r"[\x20-\x3a\x3c-\x7e]*\Z")


def parse_cookies(header: str) -> dict[str, str]:
    """The cookies of a Cookie header (a WSGI latin-1 string; UTF-8 text is recovered)."""
    with contextlib.suppress(UnicodeError):
        header = header.encode("latin-1").decode("utf-8")
    cookies: dict[str, str] = {}
    for piece in header.split(";"):
        name, sep, value = piece.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, value)
    return cookies


def _expires_text(expires: Any) -> str:
    if isinstance(expires, bool) or not isinstance(expires, (datetime.datetime, int, float)):
        raise TypeError(f"expires is an aware datetime or seconds since the epoch, not {expires!r}")
    if isinstance(expires, datetime.datetime):
        if expires.tzinfo is None or expires.utcoffset() is None:
            raise ValueError(
                "expires must be an aware datetime (a naive one has no defined instant): "
                "use datetime.now(timezone.utc) + timedelta(...)"
            )
        seconds = expires.timestamp()
    else:
        seconds = float(expires)
    return email.utils.formatdate(seconds, usegmt=True)


def set_cookie_value(
    name: str,
    value: str,
    max_age: int | datetime.timedelta | None = None,
    expires: datetime.datetime | int | float | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: str | None = None,
) -> str:
    """The value of one Set-Cookie header; ValueError/TypeError for what cannot be sent."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid cookie name {name!r}: use letters, digits and !#$%&'*+-.^_`|~ only"
        )
    if not isinstance(value, str):
        raise TypeError(f"a cookie value is a str, not {type(value).__name__}")
    if not _VALUE.match(value):
        raise ValueError(
            f"invalid cookie value {value[:40]!r}: no spaces, quotes, commas, semicolons, "
            "backslashes, control or non-ASCII characters; encode it first "
            "(urllib.parse.quote, base64.urlsafe_b64encode or itsdangerous)"
        )
    parts = [f"{name}={value}"]
    if max_age is not None:
        if isinstance(max_age, datetime.timedelta):
            max_age = int(max_age.total_seconds())
        if isinstance(max_age, bool) or not isinstance(max_age, int):
            raise TypeError(f"max_age is an int of seconds or a timedelta, not {max_age!r}")
        parts.append(f"Max-Age={max_age}")
    if expires is not None:
        parts.append(f"Expires={_expires_text(expires)}")
    for attr, text in (("Domain", domain), ("Path", path)):
        if text is None:
            continue
        if not isinstance(text, str) or not _ATTR.match(text):
            raise ValueError(
                f"invalid cookie {attr.lower()} {text!r}: no ';' or control characters"
            )
        parts.append(f"{attr}={text}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        if samesite not in SAMESITE:
            raise ValueError(
                f"samesite is one of 'Strict', 'Lax', 'None' (or None), not {samesite!r}"
            )
        if samesite == "None" and not secure:
            # browsers drop such a cookie silently; fail where it is set instead
            raise ValueError("samesite='None' needs secure=True: browsers reject it otherwise")
        parts.append(f"SameSite={samesite}")
    return "; ".join(parts)


def delete_cookie_value(name: str, path: str | None = "/", domain: str | None = None) -> str:
    """A Set-Cookie value that makes browsers drop the cookie (same name, path and domain)."""
    return set_cookie_value(name, "", max_age=0, expires=0, path=path, domain=domain)
