"""`WebSocketSession`: a small synchronous WebSocket client for tests.

Built on the project's own frame codec and a plain socket (no extra package): a reader thread
answers pings and queues messages, so the session stays alive while the test does something
else. `open_websocket` does the opening handshake; `WebSocketRejected` is a refused one.
"""

from __future__ import annotations

import base64
import contextlib
import json as jsonlib
import os
import queue
import socket
import threading
from collections.abc import Iterable, Mapping
from typing import Any, cast

from ..errors import BlazeGreenError, ConnectionClosed
from ..models import dumps, encode_message
from ..ws.extensions import EXTENSION, parse_extensions
from ..ws.frames import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    Close,
    FrameParser,
    Message,
    Ping,
    ProtocolError,
    close_payload,
    encode_frame,
)
from ..ws.handshake import accept_key
from ..ws.outgoing import RSV1, SharedCompressor

__all__ = [
    "WebSocketClosed",
    "WebSocketRejected",
    "WebSocketSession",
    "open_websocket",
]

_RECV_SIZE = 65536
_MAX_HEADER_BYTES = 65536


class WebSocketRejected(BlazeGreenError):
    """The server answered the opening handshake with something other than `101`."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"WebSocket handshake rejected: {status} {reason}: {body[:300]!r}")
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case names
        self.body = body

    @property
    def text(self) -> str:
        """The refusal's body as text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The refusal's body parsed as JSON (blaze_green's `{"error", "status"}`)."""
        return jsonlib.loads(self.body)


# The test client's sessions raise the same exception as the server's: one meaning, one name.
WebSocketClosed = ConnectionClosed


_CLOSED = object()  # the end-of-session marker in a session's message queue


def _read_response_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the end of the HTTP response headers; returns (head, bytes after it)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(_RECV_SIZE)
        if not chunk:
            raise ConnectionError(f"connection closed during the handshake; got {buf[:300]!r}")
        buf += chunk
        if len(buf) > _MAX_HEADER_BYTES and b"\r\n\r\n" not in buf:
            raise ConnectionError("handshake response headers are too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _read_body(sock: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
    length = headers.get("content-length")
    body = rest
    try:
        if length is not None and length.isdigit():
            while len(body) < int(length):
                chunk = sock.recv(_RECV_SIZE)
                if not chunk:
                    break
                body += chunk
            return body[: int(length)]
        while chunk := sock.recv(_RECV_SIZE):  # no length: read to EOF (or the timeout)
            body += chunk
    except OSError:
        pass
    return body


def open_websocket(
    host: str,
    port: int,
    path: str = "/",
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    subprotocols: Iterable[str] | None = None,
    timeout: float = 10.0,
    compression: bool = False,
) -> tuple[socket.socket, dict[str, str], bytes]:
    """Connect and complete the opening handshake. `compression`: offer permessage-deflate
    as browsers do (`permessage-deflate; client_max_window_bits`).

    Returns (socket, response headers with lower-case names, bytes read past the headers).
    Raises `WebSocketRejected` for a non-101 answer, `ConnectionError` for a bad 101.
    """
    if not path.startswith("/"):
        path = "/" + path
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        fields: dict[str, tuple[str, str]] = {}  # lower-case name -> (name, value)

        def put(name: str, value: str) -> None:
            fields[name.lower()] = (name, value)

        put("Host", f"{host}:{port}")
        put("Upgrade", "websocket")
        put("Connection", "Upgrade")
        put("Sec-WebSocket-Key", key)
        put("Sec-WebSocket-Version", "13")
        if subprotocols:
            put("Sec-WebSocket-Protocol", ", ".join(subprotocols))
        if compression:
            put("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
        items = headers.items() if isinstance(headers, Mapping) else (headers or ())
        for name, value in items:
            put(name, str(value))
        request = f"GET {path} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.values()
        )
        sock.sendall(request.encode("latin-1") + b"\r\n")
        head, rest = _read_response_head(sock)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP response: {lines[0]!r}")
        status, reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
        response_headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            response_headers[name.strip().lower()] = value.strip()
        if status != 101:
            body = _read_body(sock, response_headers, rest)
            raise WebSocketRejected(status, reason, response_headers, body)
        if response_headers.get("sec-websocket-accept") != accept_key(key):
            raise ConnectionError("the server's Sec-WebSocket-Accept does not match our key")
        sock.settimeout(None)
        return sock, response_headers, rest
    except BaseException:
        sock.close()
        raise


class WebSocketSession:
    """A synchronous WebSocket client session (from `TestClient.websocket_connect`).

    - `send(data)`: `str` → text, `bytes`-like → binary, anything else (dict, list, `Json`,
      models) → JSON text, serialized as the server does.
    - `receive(timeout=5)` → the next message (`str` or `bytes`); raises `TimeoutError`, or
      `WebSocketClosed` (with `.code`) once the session is closed and no message is left.
      `receive_text`, `receive_bytes`, `receive_json` check or decode the type.
    - `close(code=1000, reason="")`: the closing handshake; `wait_closed(timeout)` waits for the
      server to close. `close_code`/`close_reason`: from the server's close frame (1006 when
      the connection ended without one), `None` while open.
    - A reader thread answers pings with pongs and queues messages as they arrive.
    """

    def __init__(
        self,
        sock: socket.socket,
        path: str,
        headers: dict[str, str],
        initial: bytes = b"",
        *,
        max_message_size: int | None = None,
    ) -> None:
        self.path = path
        self.headers = headers  # the 101 response's headers, lower-case names
        self.subprotocol: str | None = headers.get("sec-websocket-protocol") or None
        self.close_code: int | None = None
        self.close_reason = ""
        self._sock = sock
        # permessage-deflate, if the server accepted it: what it answered decides how we
        # inflate (with its context, unless it said server_no_context_takeover).
        accepted = parse_extensions(headers.get("sec-websocket-extensions", ""))
        deflate = next((params for name, params in accepted if name == EXTENSION), None)
        self.compression: bool = deflate is not None
        names = {name for name, _ in deflate or ()}
        self._parser = FrameParser(
            max_message_size=max_message_size,
            expect_masked=False,
            deflate=self.compression,
            inflate_context="server_no_context_takeover" not in names,
        )
        # Our messages are compressed on their own (no context), which is always allowed.
        self._compressor = SharedCompressor() if self.compression else None
        self._messages: queue.Queue[Any] = queue.Queue()
        self._send_lock = threading.Lock()
        self._close_sent = False
        self._finished = threading.Event()
        self._start_reader(initial)

    # -- reading (the reader) -----------------------------------------------------------------

    def _start_reader(self, initial: bytes) -> None:
        self._reader = threading.Thread(
            target=self._read_loop, args=(initial,), name=f"ws-reader {self.path}", daemon=True
        )
        self._reader.start()

    def _stop_reader(self, timeout: float) -> None:
        if self._reader is not threading.current_thread():
            self._reader.join(timeout)

    def _read_loop(self, data: bytes) -> None:
        try:
            while True:
                if data:
                    try:
                        events = self._parser.feed(data)
                    except ProtocolError as exc:
                        for event in exc.events:
                            self._handle(event)
                        self._protocol_error(exc)
                        return
                    for event in events:
                        if self._handle(event):
                            return
                try:
                    data = self._sock.recv(_RECV_SIZE)
                except OSError:
                    data = b""
                if not data:
                    if self.close_code is None:
                        self.close_code = 1006  # ended without a close frame
                    return
        finally:
            self._finished.set()
            with self._send_lock:  # the session is over: release the socket, refuse sends
                self._close_sent = True
                with contextlib.suppress(OSError):
                    self._sock.close()
            self._messages.put(_CLOSED)
            self.on_close()

    def _handle(self, event: Any) -> bool:
        kind = type(event)
        if kind is Message:
            self.on_message(event.data)
            return False
        if kind is Ping:
            with contextlib.suppress(OSError):
                self._send_frame(OP_PONG, event.payload)
            return False
        if kind is Close:
            self.close_code = 1005 if event.code is None else event.code
            self.close_reason = event.reason
            if not self._close_sent:  # the server started: echo its code (RFC 6455 5.5.1)
                payload = b"" if event.code is None else close_payload(event.code)
                with contextlib.suppress(OSError, WebSocketClosed):
                    self._send_frame(OP_CLOSE, payload, closing=True)
            return True
        return False  # a pong

    def _protocol_error(self, exc: ProtocolError) -> None:
        self.close_code, self.close_reason = exc.code, f"client: {exc.reason}"
        with contextlib.suppress(OSError, WebSocketClosed):
            self._send_frame(OP_CLOSE, close_payload(exc.code, exc.reason), closing=True)

    def on_message(self, data: str | bytes) -> None:
        """Called on the reader for each message; queues it for `receive` (override to route)."""
        self._messages.put(data)

    def on_close(self) -> None:
        """Called on the reader once the session has ended (`close_code` is set)."""

    # -- writing ------------------------------------------------------------------------------

    def _send_frame(self, opcode: int, payload: bytes, closing: bool = False) -> int:
        if self._compressor is not None and opcode < 8 and payload:
            data = self._compressor.compress(payload)
            frame = encode_frame(opcode, data, mask=os.urandom(4), rsv=RSV1)
        else:
            frame = encode_frame(opcode, payload, mask=os.urandom(4))
        with self._send_lock:
            if self._close_sent:
                raise WebSocketClosed(self.close_code, self.close_reason)
            if closing:
                self._close_sent = True
            self._sock.sendall(frame)
        return len(payload)

    def send(self, data: Any) -> int:
        """Send one message; returns the payload size in bytes."""
        opcode, payload = encode_message(data)
        if self._finished.is_set():
            raise WebSocketClosed(self.close_code, self.close_reason)
        try:
            return self._send_frame(opcode, payload)
        except OSError as exc:  # the server dropped the connection under us
            raise WebSocketClosed(self.close_code or 1006, str(exc)) from exc

    def send_json(self, value: Any) -> int:
        """Send `value` as a JSON text message; returns the bytes written."""
        return self.send(dumps(value))

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping (the server answers with a pong, which the reader consumes)."""
        self._send_frame(OP_PING, payload)

    # -- receiving ------------------------------------------------------------------------------

    def receive(self, timeout: float | None = 5.0) -> str | bytes:
        """The next message (`str` for text, `bytes` for binary).

        TimeoutError after `timeout` seconds; ConnectionClosed once the session has closed."""
        try:
            item = self._messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message on {self.path} within {timeout}s") from None
        if item is _CLOSED:
            self._messages.put(_CLOSED)  # stays closed for the next call
            raise WebSocketClosed(self.close_code, self.close_reason)
        return cast("str | bytes", item)

    def receive_text(self, timeout: float | None = 5.0) -> str:
        """The next message, which must be text (TypeError otherwise)."""
        message = self.receive(timeout)
        if not isinstance(message, str):
            raise TypeError(f"expected a text message, got binary {message[:60]!r}")
        return message

    def receive_bytes(self, timeout: float | None = 5.0) -> bytes:
        """The next message, which must be binary (TypeError otherwise)."""
        message = self.receive(timeout)
        if not isinstance(message, bytes):
            raise TypeError(f"expected a binary message, got text {message[:60]!r}")
        return message

    def receive_json(self, timeout: float | None = 5.0) -> Any:
        """The next message parsed as JSON."""
        return jsonlib.loads(self.receive(timeout))

    # -- closing --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the session has ended (close handshake done or connection lost)."""
        return self._finished.is_set()

    def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Wait until the session has ended (whoever closed it); returns `close_code`."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"the session on {self.path} still open after {timeout}s")
        return self.close_code

    def close(self, code: int = 1000, reason: str = "", timeout: float = 5.0) -> int | None:
        """Closing handshake: send a close frame, wait for the server's, close TCP.

        Returns `close_code`. Safe to call more than once and after the server closed.
        """
        if not self._finished.is_set():
            with contextlib.suppress(OSError, WebSocketClosed):
                self._send_frame(OP_CLOSE, close_payload(code, reason), closing=True)
            self._finished.wait(timeout)
        self.abort()
        return self.close_code

    def abort(self) -> None:
        """Drop the connection at once (no closing handshake) and stop the reader."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader, which closes the socket
        self._stop_reader(5.0)
        with contextlib.suppress(OSError):
            self._sock.close()
        if self.close_code is None:
            self.close_code = 1006

    def __enter__(self) -> WebSocketSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if not self.closed else f"closed {self.close_code}"
        return f"<WebSocketSession {self.path} {state}>"
