"""A tiny raw-socket WebSocket client for tests: every byte on the wire is under the test's control.

```python
ws = RawWS.connect(server.port, "/echo")              # raises Rejected for a non-101 answer
ws.send(OP_TEXT, b"hi")                               # masked with os.urandom(4)
ws.send(OP_TEXT, b"hi", masked=False)                 # or any frame encode_frame can build
ws.send_raw(b"\x81\x02...")                           # or any bytes at all
assert ws.recv_message() == "hi"
assert ws.recv_close().code == 1002                   # the server's close frame
assert ws.wait_eof()                                  # the server closed TCP
```
Server frames are parsed with FrameParser(max_message_size=None, expect_masked=False), so a
malformed server frame fails the test with ProtocolError. Every read has a socket timeout.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections.abc import Iterable

from blaze_green.ws.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PONG,
    OP_TEXT,
    Close,
    FrameParser,
    Message,
    Ping,
    Pong,
    close_payload,
    encode_frame,
)
from blaze_green.ws.handshake import accept_key

__all__ = ["HOST", "RawWS", "Rejected", "handshake", "http_request", "frame_header"]

HOST = "127.0.0.1"
Event = Message | Ping | Pong | Close


class Rejected(Exception):
    """The server answered the handshake with something other than 101."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"{status} {reason}: {body[:200]!r}")
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case names
        self.body = body


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def handshake_request(
    port: int,
    path: str = "/echo",
    headers: dict[str, str | None] | None = None,
    method: str = "GET",
) -> tuple[bytes, str | None]:
    """The bytes of an opening handshake and its key (None when left out). `headers` adds or
    replaces headers; a value of None leaves that header out."""
    key = new_key()
    merged: dict[str, str | None] = {
        "Host": f"{HOST}:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in (headers or {}).items():
        existing = next((k for k in merged if k.lower() == name.lower()), name)
        merged.pop(existing, None)
        merged[name] = value
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in merged.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), merged.get("Sec-WebSocket-Key")


def _read_head(sock: socket.socket) -> tuple[int, str, dict[str, str], bytes]:
    """Read an HTTP response head; returns status, reason, headers, bytes after the head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed during the response head: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = status_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), (reason[0] if reason else ""), headers, rest


def _read_body(sock: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return rest[:length]


def http_request(port: int, request: bytes, timeout: float = 5.0) -> Rejected:
    """Send raw request bytes, read one response; returned as a Rejected (status, headers, body)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(request)
        status, reason, headers, rest = _read_head(sock)
        return Rejected(status, reason, headers, _read_body(sock, headers, rest))


def frame_header(opcode: int, length: int, fin: bool = True, mask: bytes | None = None) -> bytes:
    """Only the header of a frame (with its masking key): for declaring a payload never sent."""
    b0 = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        head = bytes((b0, mask_bit | length))
    elif length < 65536:
        head = struct.pack("!BBH", b0, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", b0, mask_bit | 127, length)
    return head + (mask or b"")


class RawWS:
    """An open WebSocket connection on a plain blocking socket."""

    def __init__(
        self, sock: socket.socket, initial: bytes = b"", headers: dict[str, str] | None = None
    ):
        self.sock = sock
        self.headers = headers or {}
        self.parser = FrameParser(max_message_size=None, expect_masked=False)
        self.pending: list[Event] = []
        self.eof = False
        if initial:
            self.pending.extend(self.parser.feed(initial))

    @classmethod
    def connect(
        cls,
        port: int,
        path: str = "/echo",
        headers: dict[str, str | None] | None = None,
        timeout: float = 5.0,
        method: str = "GET",
        rcvbuf: int | None = None,
    ) -> RawWS:
        """Open a connection and complete the handshake by hand; Rejected for any non-101.
        `rcvbuf`: a small SO_RCVBUF set before connecting (a non-reader whose kernel buffer
        fills fast, so the server's own queue limits are what is tested)."""
        request, key = handshake_request(port, path, headers, method)
        if rcvbuf is None:
            sock = socket.create_connection((HOST, port), timeout=timeout)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((HOST, port))
        try:
            sock.sendall(request)
            status, reason, resp_headers, rest = _read_head(sock)
            if status != 101:
                raise Rejected(status, reason, resp_headers, _read_body(sock, resp_headers, rest))
            if key is not None and resp_headers.get("sec-websocket-accept") != accept_key(key):
                raise AssertionError(f"bad Sec-WebSocket-Accept in {resp_headers}")
        except BaseException:
            sock.close()
            raise
        return cls(sock, rest, resp_headers)

    # -- sending -----------------------------------------------------------------------------

    def send(
        self,
        opcode: int,
        payload: bytes = b"",
        fin: bool = True,
        rsv: int = 0,
        masked: bool = True,
    ) -> None:
        mask = os.urandom(4) if masked else None
        self.sock.sendall(encode_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv))

    def send_text(self, text: str) -> None:
        self.send(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self.send(OP_BINARY, data)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        self.send(OP_CLOSE, close_payload(code, reason))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    # -- receiving ---------------------------------------------------------------------------

    def _fill(self, deadline: float) -> None:
        """Read once more from the socket (socket.timeout past the deadline)."""
        if self.eof:
            raise EOFError("the server closed the connection")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame from the server in time")
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise EOFError("the server closed the connection")
        self.pending.extend(self.parser.feed(data))

    def recv_event(self, timeout: float = 5.0) -> Event:
        """The next frame-level event from the server: Message, Ping, Pong or Close."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            self._fill(deadline)
        return self.pending.pop(0)

    def recv_until(self, kinds: Iterable[type], timeout: float = 5.0) -> tuple[Event, list[Event]]:
        """Skip events until one of `kinds`; returns it and the skipped ones."""
        kinds = tuple(kinds)
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            event = self.recv_event(max(0.0, deadline - time.monotonic()) or 1e-3)
            if isinstance(event, kinds):
                return event, skipped
            skipped.append(event)

    def recv_message(self, timeout: float = 5.0) -> str | bytes:
        """The next data message (pings and pongs are skipped, a Close fails)."""
        event, _ = self.recv_until((Message, Close), timeout)
        if isinstance(event, Close):
            raise AssertionError(f"expected a message, got {event}")
        return event.data

    def recv_close(self, timeout: float = 5.0) -> Close:
        """The server's close frame (messages, pings and pongs before it are skipped)."""
        event, _ = self.recv_until((Close,), timeout)
        return event

    def wait_eof(self, timeout: float = 5.0) -> bool:
        """Read (and drop) whatever comes until the server closes TCP; False on timeout.
        A reset counts as closed."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
        return True

    def pong(self, payload: bytes) -> None:
        self.send(OP_PONG, payload)

    # -- ending ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the socket (no close frame)."""
        self.sock.close()

    def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), no close frame."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def __enter__(self) -> RawWS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def handshake(
    port: int,
    path: str = "/echo",
    headers: dict[str, str | None] | None = None,
    method: str = "GET",
) -> Rejected | RawWS:
    """Connect; return the RawWS on 101, else the Rejected answer (not raised)."""
    try:
        return RawWS.connect(port, path, headers, method=method)
    except Rejected as exc:
        return exc
