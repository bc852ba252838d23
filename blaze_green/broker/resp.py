"""The few bits of RESP (the Redis protocol) the publish connection speaks: no I/O here.

Commands go out as arrays of bulk strings; the replies to PUBLISH/SPUBLISH (an integer), AUTH
and CLIENT SETNAME (+OK) and errors are single lines, which is all `split_replies` reads.
"""

from __future__ import annotations

__all__ = ["encode_command", "split_replies"]


def encode_command(*args: bytes) -> bytes:
    """`*N\\r\\n$len\\r\\narg\\r\\n...`: one command, ready for the socket."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n" % len(arg))
        parts.append(arg)
        parts.append(b"\r\n")
    return b"".join(parts)


def split_replies(buf: bytearray) -> list[bytes]:
    """Take every complete single-line reply off the front of `buf` (in place); ValueError
    for a reply this connection never asks for (a bulk string or an array)."""
    out = []
    start = 0
    while True:
        end = buf.find(b"\r\n", start)
        if end < 0:
            break
        line = bytes(buf[start:end])
        if not line or line[:1] not in (b":", b"+", b"-"):
            raise ValueError(f"unexpected reply from Redis: {line[:60]!r}")
        out.append(line)
        start = end + 2
    del buf[:start]
    return out
