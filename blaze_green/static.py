"""Static files: `StaticFiles(directory)`, a WSGI app that serves the files under one directory.

`app.static("/static", "public")` routes the requests under a prefix that no route of the app
takes to one of these (see `App.static`); it is also usable on its own or under any WSGI mount.

What it does (docs/http.md, "Static files", names the tests):
- GET and HEAD only (405 with `Allow: GET, HEAD` otherwise).
- Content-Type from the file name (`mimetypes`; text types with `charset=utf-8`),
  Content-Length, a strong ETag from mtime and size, Last-Modified, `Accept-Ranges: bytes`.
- 304 on If-None-Match, or on If-Modified-Since when there is no If-None-Match (RFC 9110 13.2.2).
- Range: one byte range gives 206 with Content-Range; an unsatisfiable one 416 with
  `Content-Range: bytes */size`; several ranges are answered 200 with the whole file (allowed by
  RFC 9110 14.2: a server may ignore Range); If-Range that does not match gives the whole file.
- The body is streamed in `chunk_size` pieces from the open file (`wsgi.file_wrapper` when the
  server offers one, e.g. gunicorn's sendfile), never read whole. (Disk reads do not yield to
  the hub; 256 KiB from the page cache take well under a millisecond.)
- A directory answers with its `index.html` (a path without the trailing slash is redirected
  to the one with it, so relative links in the page work); no listings.
- No escape: `..` and `.` segments (also percent-encoded: the server decodes PATH_INFO first),
  empty segments (`//etc/passwd`), backslashes, NUL and other control characters, dot-files,
  and anything whose resolved path (symlinks followed) is outside the directory: 404.
"""

from __future__ import annotations

import email.utils
import logging
import mimetypes
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import gevent

from .http import Response

__all__ = ["StaticFiles", "parse_range"]

log = logging.getLogger("blaze_green.static")

CHUNK_SIZE = 256 * 1024
_UTF8_TYPES = frozenset(
    ("application/javascript", "application/json", "image/svg+xml", "application/xml")
)
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)\Z")

StartResponse = Callable[..., Any]


def content_type(name: str) -> str:
    ctype, encoding = mimetypes.guess_type(name, strict=False)
    if ctype is None or encoding is not None:
        # a .gz or .br file is sent as the bytes it is, not as its decompressed type
        return "application/octet-stream"
    if ctype.startswith("text/") or ctype in _UTF8_TYPES:
        return f"{ctype}; charset=utf-8"
    return ctype


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """One `bytes=` range of a `size`-byte file: (first, last) inclusive; None when the header
    is to be ignored (bad syntax, several ranges); False when it cannot be satisfied."""
    header = header.strip()
    if "," in header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # RFC 9110 14.1.1: an invalid range-spec; the header is ignored
    if start >= size:
        return False
    return start, min(end, size - 1)


def _wsgi_text(value: str) -> str:
    # PEP 3333: PATH_INFO is the decoded bytes as latin-1; recover the UTF-8 text
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


class _FileChunks:
    """The response body: `length` bytes of an open file from its current offset, in chunks;
    `close()` (called by every WSGI server) closes the file."""

    def __init__(self, file: IO[bytes], length: int, chunk_size: int) -> None:
        self.file = file
        self.length = length
        self.chunk_size = chunk_size

    def __iter__(self) -> Iterator[bytes]:
        left = self.length
        first = True
        while left > 0:
            if not first:
                # A fast client never makes the socket write wait, so nothing else would run
                # until the whole file is out: let the other greenlets in between chunks.
                gevent.sleep(0)
            first = False
            data = self.file.read(min(self.chunk_size, left))
            if not data:
                break  # the file shrank while being sent: the client sees a short body
            left -= len(data)
            yield data

    def close(self) -> None:
        self.file.close()


class StaticFiles:
    """A WSGI app serving the files under `directory` at its PATH_INFO (`app.static` uses one).

    `index`: the file a directory URL (ending in `/`) answers with, or None for none;
    `chunk_size`: the size of each read of a file being sent; `cache_control`: the
    Cache-Control value of every file response (None for none). See docs/http.md.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        index: str | None = "index.html",
        chunk_size: int = CHUNK_SIZE,
        cache_control: str | None = "no-cache",
    ) -> None:
        root = Path(directory)
        if not root.is_dir():
            raise ValueError(
                f"static directory {str(directory)!r} does not exist or is no directory"
            )
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.root = root.resolve()
        self.index = index
        self.chunk_size = chunk_size
        self.cache_control = cache_control

    def __repr__(self) -> str:
        return f"StaticFiles({str(self.root)!r})"

    # -- resolving ---------------------------------------------------------------------------

    def resolve(self, rest: str) -> Path | None:
        """The file or directory for the URL path `rest` (relative to the mount, '/'-led or
        empty), or None when it does not exist or would leave the directory."""
        if _BAD_CHARS.search(rest):
            return None
        parts = rest.split("/")
        if parts and parts[0] == "":
            parts = parts[1:]  # the one leading slash
        if parts and parts[-1] == "":
            parts = parts[:-1]  # a trailing slash (a directory)
        for part in parts:
            # "", ".", "..", dot-files; ":" keeps Windows drive letters and streams out too
            if not part or part.startswith(".") or ":" in part:
                return None
        candidate = self.root.joinpath(*parts)
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, a symlink loop, too long a name
            return None
        if real != self.root and not real.is_relative_to(self.root):
            log.debug("refused %r: resolves outside %s", rest, self.root)
            return None
        return real

    # -- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self.serve(environ, _wsgi_text(environ.get("PATH_INFO") or ""), start_response)

    def serve(
        self, environ: dict[str, Any], rest: str, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Answer the request in `environ` for the path `rest` under the directory."""
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method not in ("GET", "HEAD"):
            return _error(
                start_response,
                405,
                "static files answer GET and HEAD only",
                method,
                [("Allow", "GET, HEAD")],
            )
        path = self.resolve(rest)
        if path is not None and path.is_dir():
            if not rest.endswith("/"):
                return self._redirect_to_dir(environ, start_response, method)
            path = self.resolve(rest + self.index) if self.index else None
        elif rest.endswith("/"):
            path = None  # a file is not a directory: /static/a.txt/ is no URL of it
        if path is None:
            return _error(start_response, 404, f"no file at {rest or '/'}", method)
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by _FileChunks.close or below
        except OSError:
            return _error(start_response, 404, f"no file at {rest}", method)
        try:
            st = os.fstat(file.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise OSError("not a regular file")
            return self._answer(environ, start_response, method, file, path, st)
        except BaseException:
            file.close()
            raise

    def _answer(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        method: str,
        file: IO[bytes],
        path: Path,
        st: os.stat_result,
    ) -> Iterable[bytes]:
        size = st.st_size
        etag = f'"{st.st_mtime_ns:x}-{size:x}"'
        headers = [
            ("ETag", etag),
            ("Last-Modified", email.utils.formatdate(int(st.st_mtime), usegmt=True)),
            ("Accept-Ranges", "bytes"),
        ]
        if self.cache_control:
            headers.append(("Cache-Control", self.cache_control))
        if _not_modified(environ, etag, int(st.st_mtime)):
            file.close()
            start_response("304 Not Modified", headers)
            return []
        headers.append(("Content-Type", content_type(path.name)))
        status = "200 OK"
        start, length = 0, size
        range_header = environ.get("HTTP_RANGE")
        if range_header and _if_range_holds(environ.get("HTTP_IF_RANGE"), etag, int(st.st_mtime)):
            byte_range = parse_range(range_header, size)
            if byte_range is False:
                file.close()
                headers = [h for h in headers if h[0] != "Content-Type"]
                headers.append(("Content-Range", f"bytes */{size}"))
                return _error(start_response, 416, f"the file has {size} bytes", method, headers)
            if isinstance(byte_range, tuple):
                start, last = byte_range
                length = last - start + 1
                status = "206 Partial Content"
                headers.append(("Content-Range", f"bytes {start}-{last}/{size}"))
        headers.append(("Content-Length", str(length)))
        start_response(status, headers)
        if method == "HEAD" or length == 0:
            file.close()
            return []
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and length == size:
            return wrapper(file, self.chunk_size)  # type: ignore[no-any-return]
        if start:
            file.seek(start)
        return _FileChunks(file, length, self.chunk_size)

    def _redirect_to_dir(
        self, environ: dict[str, Any], start_response: StartResponse, method: str
    ) -> Iterable[bytes]:
        path = _wsgi_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        location = quote(path) + "/"
        query = environ.get("QUERY_STRING")
        if query:
            location += "?" + query
        return _error(
            start_response,
            301,
            "a directory: add the trailing slash",
            method,
            [("Location", location)],
        )


def _etags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def _not_modified(environ: dict[str, Any], etag: str, mtime: int) -> bool:
    none_match = environ.get("HTTP_IF_NONE_MATCH")
    if none_match is not None:
        # RFC 9110 13.1.2: weak comparison; when present, If-Modified-Since is not looked at
        tags = _etags(none_match)
        return "*" in tags or etag in tags
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since:
        try:
            when = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False  # an invalid date is ignored (RFC 9110 13.1.3)
        if when is None:
            return False
        return mtime <= when.timestamp()
    return False


def _if_range_holds(if_range: str | None, etag: str, mtime: int) -> bool:
    """Whether the Range may apply: no If-Range, or one that matches the current file
    (strong comparison for a tag, an exact date for a date)."""
    if not if_range:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return if_range == etag
    try:
        when = email.utils.parsedate_to_datetime(if_range)
    except (TypeError, ValueError):
        return False
    return when is not None and int(when.timestamp()) == mtime


def _error(
    start_response: StartResponse,
    status: int,
    message: str,
    method: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    status_text, headers, body = Response(
        {"error": message, "status": status}, status, extra
    ).encode()
    start_response(status_text, headers)
    return [] if method == "HEAD" else [body]
