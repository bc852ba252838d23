"""HTTP for the test client without `requests`: a urllib fallback and its response object."""

from __future__ import annotations

import http.cookiejar
import json as jsonlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from email.message import Message as _HeaderMessage
from typing import Any

__all__ = ["HTTPResponse", "urllib_request"]


class HTTPResponse:
    """What `TestClient` returns when `requests` is not installed: the requests.Response
    attributes tests use (`status_code`, `headers`, `content`, `text`, `json()`, `ok`)."""

    def __init__(self, status: int, reason: str, headers: _HeaderMessage, body: bytes, url: str):
        self.status_code = status
        self.reason = reason
        self.headers = headers  # case-insensitive .get() and ["name"]
        self.content = body
        self.url = url

    @property
    def ok(self) -> bool:
        """True when the status is below 400."""
        return self.status_code < 400

    @property
    def text(self) -> str:
        """The body decoded with the response's charset (UTF-8 if none)."""
        charset = self.headers.get_content_charset() or "utf-8"
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.content)

    def raise_for_status(self) -> None:
        """Raise `urllib.error.HTTPError` for a status of 400 or more."""
        if not self.ok:
            raise urllib.error.HTTPError(
                self.url, self.status_code, self.reason, self.headers, None
            )

    def __repr__(self) -> str:
        return f"<HTTPResponse [{self.status_code}]>"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def urllib_request(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    data: bytes | str | Mapping[str, Any] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    allow_redirects: bool = True,
    cookies: http.cookiejar.CookieJar | None = None,
) -> HTTPResponse:
    """One request; with `cookies`, that jar's cookies are sent and the response's kept."""
    if params:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params, doseq=True)
    hdrs = dict(headers or {})
    body: bytes | None = None
    if json is not None:
        body = jsonlib.dumps(json).encode("utf-8")
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(data, Mapping):
        body = urllib.parse.urlencode(data, doseq=True).encode("ascii")
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif isinstance(data, str):
        body = data.encode("utf-8")
    elif data is not None:
        body = bytes(data)
    request = urllib.request.Request(url, data=body, headers=hdrs, method=method.upper())
    handlers: list[urllib.request.BaseHandler] = [] if allow_redirects else [_NoRedirect()]
    if cookies is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(cookies))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as resp:
            return HTTPResponse(resp.status, resp.reason, resp.headers, resp.read(), url)
    except urllib.error.HTTPError as exc:
        with exc:
            return HTTPResponse(exc.code, exc.reason, exc.headers, exc.read(), url)
