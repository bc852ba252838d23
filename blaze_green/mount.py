"""Mounted WSGI apps: `app.mount(prefix, wsgi_app)` for the requests blaze_green does not route.

`Mounts` holds the prefixes and finds the longest one that covers a path (prefixes.py: on a
segment boundary); `Mount.serve` calls the mounted app with a PEP 3333 environ of its own:

- `SCRIPT_NAME` gains the prefix and `PATH_INFO` keeps the rest (prefix "/" changes neither);
- `wsgi.input` is the server's stream, which ends at Content-Length; a chunked body is bounded
  by `max_body_size` (reading past it raises `RequestBodyTooLarge`, and the answer becomes 413);
  a Content-Length over `max_body_size` is a 413 before the app runs, as for our own routes;
- `wsgi.file_wrapper` is `FileWrapper`.

The app's iterable goes to the server as it is (each chunk is written as it is produced, chunked
when there is no Content-Length) and its `close()` is called by the server, also when the client
went away mid-response. `start_response` with `exc_info` and the `write()` callable are the
server's own (pywsgi), which follow PEP 3333; so is HEAD (headers only, see server.py). Pure
routing and environ work: no sockets here.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from .http import HTTPError
from .prefixes import PrefixTable, check_prefix

__all__ = [
    "FileWrapper",
    "Mount",
    "Mounts",
    "RequestBodyTooLarge",
    "file_to_send",
]

log = logging.getLogger("blaze_green.mount")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# (method, mount label, status, seconds): how a mount reports a request to the metrics
Observer = Callable[[str, str, int, float], None]

_BLOCK = 65536


def _over_limit(limit: int | None) -> str:
    return f"request body is over the limit of {limit} bytes (max_body_size): send less"


class RequestBodyTooLarge(OSError):
    """Raised by a mounted app's `wsgi.input` read past `max_body_size` (a chunked body); the
    response becomes a 413 and the connection closes."""


class BoundedInput:
    """A chunked request body for a mounted app: at most `limit` bytes, then RequestBodyTooLarge."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._left = limit
        self.limit = limit
        self.overflowed = False

    def _take(self, data: bytes) -> bytes:
        self._left -= len(data)
        if self._left < 0:
            self.overflowed = True
            raise RequestBodyTooLarge(_over_limit(self.limit))
        return data

    def _size(self, size: int | None) -> int:
        # Ask for one byte past the limit at most, so that an overflow is seen, not waited for.
        if size is None or size < 0 or size > self._left + 1:
            return self._left + 1
        return size

    def read(self, size: int | None = -1) -> bytes:
        if self.overflowed:
            raise RequestBodyTooLarge(_over_limit(self.limit))
        if size is None or size < 0:
            chunks: list[bytes] = []
            while True:
                data = self._take(self._stream.read(self._size(None)))
                if not data:
                    return b"".join(chunks)
                chunks.append(data)
        return self._take(self._stream.read(self._size(size)))

    def readline(self, size: int | None = -1) -> bytes:
        if self.overflowed:
            raise RequestBodyTooLarge(_over_limit(self.limit))
        return self._take(self._stream.readline(self._size(size)))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class FileWrapper:
    """`environ["wsgi.file_wrapper"]` (PEP 3333): a file-like object as an iterable of blocks
    (at least 64 KiB each, fewer writes than the 8 KiB werkzeug asks for), closed with it."""

    def __init__(self, filelike: IO[bytes], block_size: int = _BLOCK) -> None:
        self.filelike = filelike
        self.block_size = max(int(block_size), _BLOCK)

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.block_size)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class _Observed:
    """The app's iterable, passed through chunk by chunk; reports the request when the server
    closes it (after the last chunk, or when the client went away)."""

    __slots__ = ("wrapped", "_done")

    def __init__(self, result: Iterable[bytes], done: Callable[[], None]) -> None:
        self.wrapped = result
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.wrapped)

    def close(self) -> None:
        try:
            close = getattr(self.wrapped, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


def file_to_send(result: Any) -> tuple[int, int] | None:
    """(descriptor, offset) when `result` is a FileWrapper of a regular file, which the server
    may send with sendfile(2) instead of iterating it; None otherwise."""
    if isinstance(result, _Observed):
        result = result.wrapped
    if not isinstance(result, FileWrapper):
        return None
    try:
        fd = result.filelike.fileno()
        offset = result.filelike.tell()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError):  # no descriptor (BytesIO), or closed
        return None
    return (fd, offset) if regular else None


def _wsgi(text: str) -> str:
    # PEP 3333: environ paths are the URL's bytes decoded as latin-1.
    return text.encode("utf-8").decode("latin-1")


def _close(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("close() of a mounted app's response failed")


def _answer(
    start_response: Callable[..., Any], code: int, message: str, exc: BaseException | None
) -> list[bytes]:
    """Our JSON answer instead of the app's (with exc_info: the app may have set its own)."""
    status, headers, body = HTTPError(code, message).to_response().encode()
    if code == 413:
        headers.append(("Connection", "close"))  # the rest of the body is not read
    start_response(status, headers, None if exc is None else (type(exc), exc, exc.__traceback__))
    return [body]


class Mount:
    """One WSGI app under one prefix."""

    def __init__(self, prefix: str, app: WSGIApp) -> None:
        self.prefix = prefix
        self.app = app
        self.label = "mount:" + prefix  # the route label of its requests in the metrics
        # The prefix as PATH_INFO is compared with it (PEP 3333 text; "" for "/").
        self.key = "" if prefix == "/" else _wsgi(prefix)

    def serve(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        max_body_size: int | None,
        observe: Observer | None = None,
    ) -> Iterable[bytes]:
        """Call the mounted app for this request; returns what the server should write."""
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        status_code = [0]

        def report() -> None:
            if observe is not None:
                observe(method, self.label, status_code[0], time.perf_counter() - started)

        length = environ.get("CONTENT_LENGTH") or ""
        if max_body_size is not None and length.isdigit() and int(length) > max_body_size:
            # Refused unread, as for our own routes: answered, and the connection closes.
            stream: Any = environ.get("wsgi.input")
            if hasattr(stream, "position") and hasattr(stream, "content_length"):
                stream.content_length = stream.position  # nothing for the server to drain
            status_code[0] = 413
            report()
            message = f"request body is {length} bytes; the limit is {max_body_size}"
            return _answer(start_response, 413, message, None)
        env, bounded = self._environ(environ, max_body_size)
        wrote = [False]

        def app_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], Any]:
            write = start_response(status, headers, exc_info)
            status_code[0] = int(status[:3]) if status[:3].isdigit() else 0

            def app_write(data: bytes) -> Any:
                wrote[0] = True
                return write(data)

            return app_write

        def answer(code: int, message: str, exc: BaseException) -> list[bytes]:
            status_code[0] = code
            report()
            return _answer(start_response, code, message, exc)

        try:
            result = self.app(env, app_start_response)
        except Exception as exc:
            if wrote[0]:
                report()
                raise  # part of the body is out: the server closes the connection
            if isinstance(exc, RequestBodyTooLarge):
                return answer(413, str(exc), exc)
            log.exception(
                "%s %s failed in the WSGI app mounted at %r", method, env["PATH_INFO"], self.prefix
            )
            return answer(500, "internal server error", exc)
        if bounded is not None and bounded.overflowed and not wrote[0]:
            # The app read past max_body_size and answered anyway (often a 500 for the
            # exception it got): the client is told what happened instead.
            _close(result)
            over = RequestBodyTooLarge(_over_limit(max_body_size))
            return answer(413, str(over), over)
        if observe is None:
            return result
        if isinstance(result, (list, tuple)):  # a sequence: the server may sum its length
            report()
            return result
        return _Observed(result, report)

    def _environ(
        self, environ: dict[str, Any], max_body_size: int | None
    ) -> tuple[dict[str, Any], BoundedInput | None]:
        """The mounted app's own environ (a copy: the app may write into it)."""
        env = dict(environ)
        if self.key:
            env["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.key
            env["PATH_INFO"] = environ.get("PATH_INFO", "")[len(self.key) :]
        bounded: BoundedInput | None = None
        if (
            max_body_size is not None
            and not environ.get("CONTENT_LENGTH")
            and environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        ):
            bounded = env["wsgi.input"] = BoundedInput(environ.get("wsgi.input"), max_body_size)
        env["wsgi.file_wrapper"] = FileWrapper
        return env, bounded


class Mounts:
    """The mounted apps, found by the longest prefix covering a PATH_INFO."""

    def __init__(self) -> None:
        self._table: PrefixTable[Mount] = PrefixTable()

    def __bool__(self) -> bool:
        return bool(self._table)

    def __iter__(self) -> Iterator[Mount]:
        return iter(self._table)

    def add(self, prefix: str, app: WSGIApp) -> Mount:
        prefix = check_prefix(prefix, "mount prefix")
        if not callable(app):
            raise TypeError(f"mount a WSGI app (a callable (environ, start_response)), not {app!r}")
        mount = Mount(prefix, app)
        if not self._table.add(mount.key, mount):
            raise ValueError(f"a WSGI app is already mounted at {prefix!r}")
        return mount

    def find(self, path_info: str) -> Mount | None:
        """The mount with the longest prefix that covers `path_info` (raw PEP 3333 text)."""
        return self._table.find(path_info)
