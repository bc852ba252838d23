"""A Redis connection for publishing that any greenlet may write without ever blocking.

`write()` is what `broadcast` calls (through the broker): when nothing is waiting to go out,
the command goes straight to the socket with a non-blocking `send`, so the other processes
get the message while this one is still delivering it locally; what the kernel does not take
stays in `unsent` (bounded), which the broker's writer greenlet sends with `flush()`. Both run
on the hub thread and neither yields between checking `unsent` and sending, so the bytes of
two commands never interleave and the order on the wire is the order of the calls. The
replies (one integer per PUBLISH) are read by the broker's reader greenlet with
`read_replies()`; a connection whose oldest command has gone unanswered for `reply_timeout`
seconds counts as dead (a hung Redis), as does any socket error.

TLS (`rediss://`) is not written from the caller: an SSL socket cannot take a partial write
and a different buffer next time, so there every command waits for the writer greenlet.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from typing import Any

from gevent.socket import wait_read, wait_write

from .resp import encode_command, split_replies

__all__ = ["PublishConnection", "ReplyError"]


class ReplyError(Exception):
    """Redis answered a command with an error (ACL, wrong cluster node...)."""


class PublishConnection:
    def __init__(
        self,
        kwargs: dict[str, Any],
        *,
        client_name: str,
        connect_timeout: float,
        reply_timeout: float,
        max_unsent: int,
        tls: bool = False,
    ) -> None:
        self._kwargs = kwargs  # redis-py's connection_kwargs: host/port or path, credentials
        self._client_name = client_name
        self._connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self.max_unsent = max_unsent  # bytes
        self.direct = not tls
        self._tls = tls
        self._sock: Any = None
        self.unsent = bytearray()
        self._inbuf = bytearray()
        self.unanswered = 0  # commands written or queued, not answered yet
        self._progress = 0.0  # monotonic time of the last reply (or of the first command)
        self.broken: BaseException | None = None

    # -- setup (on a broker greenlet; cooperative blocking) ---------------------------------

    def connect(self) -> None:
        kw = self._kwargs
        t = self._connect_timeout
        if kw.get("path"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(t)
            sock.connect(kw["path"])
        else:
            sock = socket.create_connection((kw.get("host", "localhost"), kw.get("port", 6379)), t)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            ctx = ssl.create_default_context(cafile=kw.get("ssl_ca_certs"))
            if kw.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=kw.get("host"))
        self._sock = sock
        hello = []
        if kw.get("password"):
            creds = [kw["username"]] if kw.get("username") else []
            hello.append(
                encode_command(
                    b"AUTH", *(str(c).encode() for c in creds), str(kw["password"]).encode()
                )
            )
        hello.append(encode_command(b"CLIENT", b"SETNAME", self._client_name.encode()))
        sock.sendall(b"".join(hello))
        got: list[bytes] = []
        deadline = time.monotonic() + t
        while len(got) < len(hello):
            if time.monotonic() >= deadline:
                raise TimeoutError("no answer to AUTH / CLIENT SETNAME")
            data = sock.recv(4096)
            if not data:
                raise ConnectionError("Redis closed the connection during setup")
            self._inbuf += data
            got += split_replies(self._inbuf)
        for line in got:
            if line.startswith(b"-"):
                raise ReplyError(line[1:].decode("utf-8", "replace"))
        sock.settimeout(0.0)  # from now on: non-blocking sends, waits through wait_read/write

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    # -- writing ------------------------------------------------------------------------------

    def write(self, command: bytes) -> bool:
        """Send or queue one command without blocking; False (nothing written) when the
        unsent backlog is full or the connection is broken."""
        if self.broken is not None or self._sock is None:
            return False
        if self.unsent:
            if len(self.unsent) + len(command) > self.max_unsent:
                return False
            self.unsent += command
        elif self.direct:
            try:
                n = self._sock.send(command)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self.broken = exc
                return False
            if n < len(command):
                self.unsent += memoryview(command)[n:]
        else:
            self.unsent += command
        if not self.unanswered:
            self._progress = time.monotonic()
        self.unanswered += 1
        return True

    def flush(self) -> None:
        """Send `unsent` (on the writer greenlet: waits for the socket, up to reply_timeout
        per wait); raises on a socket error or a socket that stays full."""
        sock = self._sock
        while self.unsent and sock is not None:
            if self.broken is not None:
                raise self.broken
            wait_write(
                sock.fileno(),
                timeout=self.reply_timeout,
                timeout_exc=TimeoutError("Redis does not read (socket full)"),
            )
            try:
                n = sock.send(self.unsent)
            except (BlockingIOError, ssl.SSLWantWriteError):
                continue
            del self.unsent[:n]

    # -- replies --------------------------------------------------------------------------

    def read_replies(self, idle: float) -> tuple[int, list[str]]:
        """Wait for replies (up to `idle` s when nothing is owed, else until the oldest
        command is reply_timeout old); (how many commands succeeded, error messages).
        Raises on EOF, a socket error, or a command left unanswered too long."""
        sock = self._sock
        if sock is None:
            raise ConnectionError("not connected")
        if self.unanswered:
            wait = self._progress + self.reply_timeout - time.monotonic()
            if wait <= 0:
                raise TimeoutError(f"no reply from Redis within {self.reply_timeout} s")
        else:
            wait = idle
        try:
            wait_read(sock.fileno(), timeout=wait, timeout_exc=_Idle())
        except _Idle:
            return 0, []
        try:
            data = sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return 0, []
        if not data:
            raise ConnectionError("Redis closed the publish connection")
        self._inbuf += data
        lines = split_replies(self._inbuf)
        self._progress = time.monotonic()
        self.unanswered -= len(lines)
        errors = [ln[1:].decode("utf-8", "replace") for ln in lines if ln.startswith(b"-")]
        return len(lines) - len(errors), errors


class _Idle(Exception):
    pass
