"""HTTP: Request, Response, HTTPError, and turning handler return values into WSGI responses."""

from __future__ import annotations

import datetime
import http
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, TypeVar
from urllib.parse import parse_qsl

from marshmallow import ValidationError

from . import forms
from .clientlog import client_error
from .cookies import delete_cookie_value, parse_cookies, set_cookie_value
from .models import Json, dumps, is_model, load_model, loads

__all__ = ["Request", "Response", "HTTPError", "Headers", "Query", "status_line"]

T = TypeVar("T")

_STATUS_LINES: dict[int, str] = {s.value: f"{s.value} {s.phrase}" for s in http.HTTPStatus}

HTML = "text/html; charset=utf-8"
JSON = "application/json"
OCTETS = "application/octet-stream"


def status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"HTTP status must be a 3-digit number, got {status!r}")
        line = _STATUS_LINES[status] = f"{status} Status {status}"
    return line


class HTTPError(Exception):
    """Raise in a handler or `before_open` hook: answers `status` with
    `{"error": message, "status": status}`."""

    def __init__(
        self,
        status: int,
        message: Any = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        if message is None:
            try:
                message = http.HTTPStatus(status).phrase
            except ValueError:
                message = f"HTTP {status}"
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = _checked(headers)

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"

    def to_response(self) -> Response:
        """The response this error becomes: `{"error": message, "status": status}` as JSON."""
        return Response({"error": self.message, "status": self.status}, self.status, self.headers)


class Headers(Mapping[str, str]):
    """Request headers from a WSGI environ, looked up case-insensitively."""

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ

    @staticmethod
    def _key(name: str) -> str:
        key = name.upper().replace("-", "_")
        return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key

    def __getitem__(self, name: str) -> str:
        value: str | None = self._environ.get(self._key(name))
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._environ

    def __iter__(self) -> Iterator[str]:
        for key in self._environ:
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").title()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and self._environ[key]:
                yield key.replace("_", "-").title()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Query(dict[str, str]):
    """Query-string parameters: the first value per name; `getlist(name)` for all of them."""

    def __init__(self, query_string: str) -> None:
        self._pairs = parse_qsl(query_string, keep_blank_values=True)
        super().__init__()
        for key, value in self._pairs:
            self.setdefault(key, value)

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]


def _wsgi_str(value: str) -> str:
    # PEP 3333 hands the path over as latin-1 decoded bytes; recover the UTF-8 text.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


class Request:
    """One HTTP request (or WebSocket handshake). Reading is lazy: nothing is parsed
    until asked for."""

    __slots__ = (
        "environ",
        "method",
        "path",
        "max_body_size",
        "_query",
        "_data",
        "_json",
        "_cookies",
        "_form",
        "_files",
        "_streamed",
    )

    def __init__(self, environ: dict[str, Any], max_body_size: int | None = None) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()
        self.path: str = _wsgi_str(environ.get("PATH_INFO") or "/")
        self.max_body_size = max_body_size
        self._query: Query | None = None
        self._data: bytes | None = None
        self._json: Any = _UNSET
        self._cookies: dict[str, str] | None = None
        self._form: forms.FormData | None = None
        self._files: forms.MultiValues[forms.UploadedFile] | None = None
        self._streamed = False  # a multipart body went into req.form without being kept

    @property
    def query(self) -> Query:
        """The query string's parameters (a dict of first values; `getlist(name)` for all)."""
        if self._query is None:
            self._query = Query(_wsgi_str(self.environ.get("QUERY_STRING", "")))
        return self._query

    @property
    def headers(self) -> Headers:
        """The request headers, case-insensitive (`req.headers["X-Token"]`)."""
        return Headers(self.environ)

    @property
    def remote_addr(self) -> str | None:
        """The client's address (`REMOTE_ADDR`; behind a proxy, the proxy's)."""
        return self.environ.get("REMOTE_ADDR")

    @property
    def content_type(self) -> str:
        """The `Content-Type` header, or an empty string."""
        return self.environ.get("CONTENT_TYPE", "")  # type: ignore[no-any-return]

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies (name -> value); malformed pieces of the header are skipped."""
        if self._cookies is None:
            self._cookies = parse_cookies(self.environ.get("HTTP_COOKIE", ""))
        return self._cookies

    @property
    def form(self) -> forms.FormData:
        """The fields of a urlencoded or multipart/form-data body (`getlist` for repeated
        names); empty for other bodies. A malformed body is a 400, one too large a 413."""
        if self._form is None:
            self._load_form()
        assert self._form is not None
        return self._form

    @property
    def files(self) -> forms.MultiValues[forms.UploadedFile]:
        """The uploaded files of a multipart/form-data body, by field name (`getlist` for
        several under one name). They are closed (temporary files removed) when the request
        ends."""
        if self._files is None:
            self._load_form()
        assert self._files is not None
        return self._files

    def _load_form(self) -> None:
        kind, params = forms.form_kind(self.content_type)
        read: Callable[[int], bytes]
        self._form, self._files = forms.FormData(), forms.MultiValues()
        try:
            if kind == forms.URLENCODED:
                self._form = forms.parse_urlencoded(self.data)
            elif kind == forms.MULTIPART:
                if self._data is not None:
                    read, length = io.BytesIO(self._data).read, len(self._data)
                else:
                    # streamed into the parser (large parts spooled to disk), not kept
                    read, length = self._body_reader()
                    self._streamed = True
                self._form, self._files = forms.parse_multipart(read, params, length)
        except forms.FormLimitError as exc:
            raise HTTPError(413, str(exc), _CLOSE) from None
        except forms.FormError as exc:
            raise HTTPError(400, str(exc)) from None

    def close(self) -> None:
        """End of the request: close the uploaded files (removing their temporary files)."""
        if self._files:
            for _, upload in self._files.pairs():
                upload.close()

    @property
    def data(self) -> bytes:
        """The raw body; 413 past `max_body_size`, whether or not Content-Length says so."""
        if self._data is None:
            if self._streamed:
                raise RuntimeError(
                    "the multipart body was streamed into req.form/req.files and not kept: "
                    "read req.data before req.form to have both"
                )
            self._data = self._guarded(self._read_body_unchecked)()
        return self._data

    def _guarded(self, fn: Callable[..., T]) -> Callable[..., T]:
        """`fn` with the body stream's failures turned into HTTP errors."""

        def call(*args: Any) -> T:
            try:
                return fn(*args)
            except TimeoutError:
                # body_timeout: no byte of the declared body within it (the socket timeout)
                client_error(self.environ.get("REMOTE_ADDR"), "request body stalled: 408")
                raise HTTPError(408, "request body timed out", _CLOSE) from None
            except OSError as exc:
                # a malformed chunked body (pywsgi's _InvalidClientInput is an IOError), or the
                # connection ended inside the body: the stream cannot be trusted any more
                client_error(self.environ.get("REMOTE_ADDR"), "malformed request body: %s", exc)
                raise HTTPError(400, "malformed request body", _CLOSE) from None

        return call

    def _declared_length(self) -> int | None:
        """Content-Length as an int (None without one); 400 if bad, 413 past the limit."""
        length_header = self.environ.get("CONTENT_LENGTH") or ""
        if not length_header:
            return None
        if not (length_header.isascii() and length_header.isdigit()):
            raise HTTPError(400, "Content-Length is not a number")
        length = int(length_header)
        limit = self.max_body_size
        if limit is not None and length > limit:
            raise HTTPError(413, f"request body is {length} bytes; the limit is {limit}")
        return length

    def _body_reader(self) -> tuple[Callable[[int], bytes], int]:
        """A bounded `read(n)` over the body, and its declared length (-1 when chunked)."""
        limit = self.max_body_size
        stream: IO[bytes] | None = self.environ.get("wsgi.input")
        length = self._declared_length()
        chunked = self.environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        if stream is None or not (length or chunked):
            return (lambda n: b""), 0
        left = length if length is not None else -1
        total = 0

        def read(n: int) -> bytes:
            nonlocal left, total
            if left == 0:
                return b""
            data = stream.read(n if left < 0 else min(n, left))
            total += len(data)
            if left > 0:
                left -= len(data)
            if limit is not None and total > limit:
                raise HTTPError(413, f"request body is over the limit of {limit} bytes", _CLOSE)
            return data

        return self._guarded(read), left

    def _read_body_unchecked(self) -> bytes:
        limit = self.max_body_size
        stream: IO[bytes] | None = self.environ.get("wsgi.input")
        chunked = self.environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        length = self._declared_length()
        if length is not None:
            return stream.read(length) if stream is not None and length > 0 else b""
        if chunked and stream is not None:
            body = stream.read() if limit is None else stream.read(limit + 1)
            if limit is not None and len(body) > limit:
                raise HTTPError(413, f"request body is over the limit of {limit} bytes")
            return body
        return b""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.data.decode("utf-8", "replace")

    @property
    def json(self) -> Any:
        """The parsed JSON body; a 400 when the body is not JSON."""
        if self._json is _UNSET:
            raw = self.data
            if not raw:
                raise HTTPError(400, "request body is empty; send a JSON document")
            try:
                self._json = loads(raw)
            except ValueError as exc:
                raise HTTPError(400, f"request body is not valid JSON: {exc}") from None
        return self._json

    def body(self, cls: type[T]) -> T:
        """The JSON body validated against a model; a 400 with the field messages on error."""
        try:
            return load_model(cls, self.json)
        except ValidationError as exc:
            raise HTTPError(400, exc.messages) from None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


_UNSET: Any = object()
_CLOSE = (("Connection", "close"),)
HeaderArg = Mapping[str, str] | Iterable[tuple[str, str]] | None

# A field value may hold HTAB, visible ASCII and obs-text (RFC 9110 5.5), nothing else: no CR,
# LF or NUL (response splitting), no other control byte, nothing latin-1 cannot encode.
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def check_header(name: Any, value: Any) -> None:
    """Raise ValueError (TypeError for a non-str) unless `name: value` may go on the wire."""
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
    if _TOKEN.match(name) is None:
        raise ValueError(f"invalid header name {name!r}")
    bad = _BAD_VALUE.search(value)
    if bad is not None:
        raise ValueError(
            f"header {name} has {bad.group()!r} in its value (CR, LF, NUL, other control "
            "characters and characters outside latin-1 are not allowed)"
        )


def _checked(headers: HeaderArg) -> list[tuple[str, str]]:
    items = list(headers.items() if isinstance(headers, Mapping) else headers or [])
    for name, value in items:
        check_header(name, value)
    return items


class Response:
    """An HTTP response. `content_type` wins over a Content-Type in `headers`; with neither,
    the body's type decides (str: HTML, bytes: octets, anything else: JSON)."""

    __slots__ = ("body", "status", "headers", "content_type")

    def __init__(
        self,
        body: Any = b"",
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.headers: list[tuple[str, str]] = _checked(headers) if headers else []
        if content_type is not None:
            check_header("Content-Type", content_type)
        self.content_type = content_type

    def set_cookie(
        self,
        name: str,
        value: str,
        max_age: int | datetime.timedelta | None = None,
        expires: datetime.datetime | int | float | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = None,
    ) -> None:
        """Add a Set-Cookie header (one per call). `expires`: an aware datetime or seconds
        since the epoch; `samesite`: "Strict", "Lax" or "None" (which needs secure=True).
        A name or value that cannot be sent as it is raises ValueError."""
        self.headers.append(
            (
                "Set-Cookie",
                set_cookie_value(
                    name, value, max_age, expires, path, domain, secure, httponly, samesite
                ),
            )
        )

    def delete_cookie(self, name: str, path: str | None = "/", domain: str | None = None) -> None:
        """Tell the browser to drop the cookie `name` set with this path and domain."""
        self.headers.append(("Set-Cookie", delete_cookie_value(name, path, domain)))

    def encode(self) -> tuple[str, list[tuple[str, str]], bytes]:
        """Status line, headers (with Content-Type and Content-Length) and the body bytes."""
        body = self.body
        if isinstance(body, str):
            data, default_type = body.encode("utf-8"), HTML
        elif isinstance(body, (bytes, bytearray, memoryview)):
            data, default_type = bytes(body), OCTETS
        elif body is None:
            data, default_type = b"", None
        else:
            data, default_type = dumps(body).encode("utf-8"), JSON
        if self.headers:
            # checked again here: the list may have been changed since it was set
            _checked(self.headers)
            headers = [
                (k, v)
                for k, v in self.headers
                if k.lower() not in ("content-length", "content-type")
            ]
            given = self.content_type or next(
                (v for k, v in self.headers if k.lower() == "content-type"), None
            )
        else:
            headers = []
            given = self.content_type
        if self.content_type is not None:
            check_header("Content-Type", self.content_type)
        ctype = given or default_type
        if ctype is not None:
            headers.append(("Content-Type", ctype))
        if self.status not in (204, 304) and not 100 <= self.status < 200:
            headers.append(("Content-Length", str(len(data))))
        else:
            data = b""
        return status_line(self.status), headers, data

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


def to_response(value: Any) -> Response:
    """Apply the return-value conventions to whatever a handler returned."""
    if isinstance(value, Response):
        return value
    if isinstance(value, tuple):
        if len(value) == 2:
            return Response(value[0], value[1])
        if len(value) == 3:
            return Response(value[0], value[1], value[2])
        raise TypeError(
            f"return (body, status) or (body, status, headers), not a tuple of {len(value)}"
        )
    if value is None:
        return Response(None, 204)
    if isinstance(value, (str, bytes, bytearray, memoryview, dict, list, Json)) or is_model(value):
        return Response(value)
    raise TypeError(
        f"a handler returned {type(value).__name__}: return str, bytes, dict, list, Json, "
        "a model instance, a Response or a (body, status[, headers]) tuple"
    )
