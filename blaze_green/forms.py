"""Form bodies: `application/x-www-form-urlencoded` and `multipart/form-data`. No I/O of its own.

`parse_urlencoded` takes the body bytes; `parse_multipart` pulls the body through a `read(n)`
callable (the request's bounded body stream) into the `multipart` package's parser (defnull's:
chosen by bench/bench_multipart.py, see docs/http.md). Parts over `SPOOL_LIMIT` bytes are
spooled to anonymous temporary files, which `UploadedFile.close()` (called by the app when the
request ends) closes and so removes. Malformed bodies raise `FormError` with a message; limits
reached raise `FormLimitError`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from email.message import Message
from typing import IO, Any, TypeVar
from urllib.parse import parse_qsl

import multipart

__all__ = [
    "FormData",
    "UploadedFile",
    "FormError",
    "FormLimitError",
    "parse_urlencoded",
    "parse_multipart",
    "form_kind",
]

SPOOL_LIMIT = 256 * 1024  # a part larger than this goes to a temporary file
MEMORY_LIMIT = 8 * 1024 * 1024  # all in-memory parts of one body together
MAX_PARTS = 1000
MAX_FIELDS = 10000  # urlencoded fields
_READ_SIZE = 64 * 1024

V = TypeVar("V")

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


class FormError(ValueError):
    """A malformed form body (answered 400 with this message)."""


class FormLimitError(FormError):
    """A form over a limit: too many parts or fields, too much in memory (answered 413)."""


class MultiValues(dict[str, V]):
    """name -> first value, as a dict; `getlist(name)` for all of a name's values in order."""

    def __init__(self, pairs: list[tuple[str, V]] | None = None) -> None:
        super().__init__()
        self._pairs: list[tuple[str, V]] = list(pairs or [])
        for key, value in self._pairs:
            self.setdefault(key, value)

    def getlist(self, name: str) -> list[V]:
        """Every value of `name`, in the order they came ([] if none)."""
        return [v for k, v in self._pairs if k == name]

    def pairs(self) -> list[tuple[str, V]]:
        """Every (name, value), in the order they came."""
        return list(self._pairs)


class FormData(MultiValues[str]):
    """`req.form`: the text fields."""


class UploadedFile:
    """One file of a multipart body (`req.files[name]`)."""

    def __init__(self, part: Any) -> None:
        self._part = part
        self.name: str = part.name
        self.filename: str = part.filename or ""
        self.content_type: str = part.content_type
        self.size: int = part.size

    @property
    def stream(self) -> IO[bytes]:
        """The file object holding the content (in memory, or a temporary file)."""
        file = self._part.file
        if file is None:
            raise ValueError("the uploaded file is closed (the request it came with has ended)")
        return file  # type: ignore[no-any-return]

    @property
    def closed(self) -> bool:
        """Whether the file was closed (at the end of its request, or by `close()`)."""
        return self._part.file is None

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes from the read position (all the rest by default)."""
        return self.stream.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the read position, as `io.IOBase.seek`."""
        return self.stream.seek(offset, whence)

    def save(self, path: str | Any) -> int:
        """Copy the whole content to `path` (a file name or a writable binary file object);
        returns the number of bytes written. The read position is kept."""
        stream = self.stream
        position = stream.tell()
        stream.seek(0)
        try:
            if hasattr(path, "write"):
                before = path.tell() if hasattr(path, "tell") else 0
                shutil.copyfileobj(stream, path, _READ_SIZE)
                return (path.tell() - before) if hasattr(path, "tell") else self.size
            with open(path, "wb") as out:
                shutil.copyfileobj(stream, out, _READ_SIZE)
                return out.tell()
        finally:
            stream.seek(position)

    def close(self) -> None:
        """Free the content (a temporary file is removed); the app does it when the request ends."""
        self._part.close()

    def __repr__(self) -> str:
        what = f"{self.content_type}, {self.size} bytes"
        return f"<UploadedFile {self.name!r}: {self.filename!r} ({what})>"


def form_kind(content_type: str) -> tuple[str, dict[str, str]]:
    """The media type of a Content-Type (lower case) and its parameters."""
    message = Message()
    message["Content-Type"] = content_type
    params = {k.lower(): str(v) for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type() if content_type else "", params


def parse_urlencoded(body: bytes) -> FormData:
    try:
        pairs = parse_qsl(
            body.decode("utf-8", "replace"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            errors="replace",
        )
    except ValueError as exc:
        raise FormLimitError(f"the form has more than {MAX_FIELDS} fields") from exc
    return FormData(pairs)


def parse_multipart(
    read: Callable[[int], bytes], params: dict[str, str], content_length: int
) -> tuple[FormData, MultiValues[UploadedFile]]:
    """Parse a multipart/form-data body; `params` are the Content-Type's parameters."""
    boundary = params.get("boundary")
    if not boundary:
        raise FormError(
            "multipart/form-data without a boundary parameter: "
            "send Content-Type: multipart/form-data; boundary=..."
        )
    charset = params.get("charset", "utf-8")
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, UploadedFile]] = []
    parser = multipart.MultipartParser(
        _Reader(read),
        boundary,
        content_length,
        charset=charset,
        buffer_size=_READ_SIZE,
        part_limit=MAX_PARTS,
        spool_limit=SPOOL_LIMIT,
        memory_limit=MEMORY_LIMIT,
    )
    try:
        for part in parser:
            if part.filename is not None:
                files.append((part.name, UploadedFile(part)))
                continue
            try:
                fields.append((part.name, part.value))
            except (UnicodeDecodeError, LookupError):
                raise FormError(f"form field {part.name!r} is not valid {charset} text") from None
            finally:
                part.close()
    except multipart.ParserLimitReached as exc:
        _close_all(files)
        raise FormLimitError(f"multipart body over a limit: {exc}") from None
    except multipart.MultipartError as exc:
        _close_all(files)
        raise FormError(f"malformed multipart/form-data body: {exc}") from None
    except BaseException:
        _close_all(files)
        raise
    return FormData(fields), MultiValues(files)


def _close_all(files: list[tuple[str, UploadedFile]]) -> None:
    for _, upload in files:
        upload.close()


class _Reader:
    """The `read(n)` object the parser wants, around the request's bounded read function."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self.read = read
