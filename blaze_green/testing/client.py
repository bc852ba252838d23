"""Talk to an app under test: an in-process server thread, an HTTP + WebSocket test client.

```python
from blaze_green.testing import TestClient

with TestClient(app) as client:                       # in this process, on a free port
    assert client.get("/hello").text == "hi"
    with client.websocket_connect("/feed") as ws:
        ws.send("ping")
        assert ws.receive() == "Echo: ping"

with TestClient("myapp:app", cwd="src") as client:    # `blaze-green run` in a child process
    ...
```

`AppServer(app)` runs an `App` on the embedded server (blaze_green.server.Server) in a daemon
OS thread with its own gevent hub: handlers, `on_open`/`on_message`/`on_close` and background
tasks all run on that thread's hub, cooperatively with each other, while the test runs in its
own thread. The test process is not monkey-patched for it (and need not be): a blocking call in
a handler (`time.sleep`, an unpatched socket) blocks the test server only, never the test.
`app.broadcast(...)` called from the test thread is handed to that hub (see App.broadcast).

`WebSocketSession` is a small synchronous client built on the project's own frame codec and a
plain socket (no extra package): a reader thread answers pings and queues messages, so the
session stays alive while the test does something else.
"""

from __future__ import annotations

import base64
import contextlib
import json as jsonlib
import os
import queue
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterable, Mapping
from email.message import Message as _HeaderMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ws.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    FrameParser,
    Message,
    Ping,
    ProtocolError,
    close_payload,
    encode_frame,
)
from ..ws.handshake import accept_key

if TYPE_CHECKING:
    from ..app import App
    from . import ServerProcess

__all__ = [
    "AppServer",
    "HTTPResponse",
    "TestClient",
    "WebSocketClosed",
    "WebSocketRejected",
    "WebSocketSession",
]

_RECV_SIZE = 65536
_MAX_HEADER_BYTES = 65536


# -- the in-process server -------------------------------------------------------------------

# The AppServer running each app: an app has one hub, so one in-process server at a time.
_serving: weakref.WeakKeyDictionary[Any, AppServer] = weakref.WeakKeyDictionary()


class AppServer:
    """An `App` served on `host` (127.0.0.1) and a free port in a daemon OS thread.

    ```python
    with AppServer(app) as server:
        requests.get(server.url + "/hello")
    ```
    The thread runs its own gevent hub and `blaze_green.server.Server` without signal handlers.
    `stop()` shuts it down gracefully (sessions closed with 1001, `on_close` run, tasks killed)
    and joins the thread. Nothing is monkey-patched; `require_patched()` is not applied here.
    """

    def __init__(
        self, app: App, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 10.0
    ) -> None:
        self.app = app
        self.host = host
        self.port: int | None = None
        self._bind_port = port
        self.start_timeout = start_timeout
        self._server: Any = None
        self._loop: Any = None
        self._error: BaseException | None = None
        self._ready: Any = None
        self._done: Any = None
        self._signalled = False
        self._stopped = False
        self._thread_done = False

    def start(self) -> AppServer:
        if self._done is not None:
            raise RuntimeError("this AppServer was already started; make a new one")
        other = _serving.get(self.app)
        if other is not None and other.running:
            raise RuntimeError(
                f"{self.app!r} is already served in this process at {other.url}: stop that "
                "server first (an app runs on one server at a time)"
            )
        _serving[self.app] = self
        from gevent import monkey

        # Real OS-thread primitives even in a monkey-patched process: the server needs a
        # thread of its own (with its own hub), not a greenlet of the caller's hub.
        allocate_lock = monkey.get_original("_thread", "allocate_lock")
        start_new_thread = monkey.get_original("_thread", "start_new_thread")
        self._ready, self._done = allocate_lock(), allocate_lock()
        self._ready.acquire()
        self._done.acquire()
        start_new_thread(self._serve, ())
        if not self._ready.acquire(timeout=self.start_timeout):
            raise TimeoutError(f"the app server did not start within {self.start_timeout}s")
        if self._error is not None:
            self._stopped = True
            self._done.acquire(timeout=5)
            raise RuntimeError(f"the app server failed to start: {self._error!r}") from self._error
        return self

    def _serve(self) -> None:
        import gevent

        from ..server import Server

        outer = self
        hub = gevent.get_hub()

        class ThreadServer(Server):
            def start(self) -> None:
                super().start()
                outer.port = self.address[1]
                outer._signal_ready()

        try:
            self._loop = hub.loop
            self._server = ThreadServer(self.app, self.host, self._bind_port)
            self._server.run(install_signals=False)
        except BaseException as exc:  # reported to start() or stop()
            self._error = exc
            if self._server is not None:  # it may have started listening before failing
                with contextlib.suppress(Exception):
                    self._server.wsgi.stop(timeout=0.5)
            self._forget_hub()
        finally:
            self._signal_ready()
            with contextlib.suppress(Exception):
                hub.destroy(destroy_loop=True)
            self._thread_done = True
            self._done.release()

    def _forget_hub(self) -> None:
        app = self.app
        if self._loop is not None and getattr(app, "_hub_loop", None) is self._loop:
            # The hub is gone: broadcasts from now on are local calls (no sessions, returns 0).
            app._hub_thread = None
            app._hub_loop = None

    def _signal_ready(self) -> None:
        if not self._signalled:
            self._signalled = True
            self._ready.release()

    def stop(self, timeout: float | None = None) -> None:
        """Shut the server down gracefully and join its thread (idempotent)."""
        done = self._done
        if done is None or self._stopped:
            return
        self._stopped = True
        if timeout is None:
            timeout = self.app.config.shutdown_timeout + 5.0
        if self._server is not None and self._error is None:
            with contextlib.suppress(Exception):  # the loop may be gone if the thread ended
                self._loop.run_callback_threadsafe(self._server.stop)
        finished = done.acquire(timeout=timeout)
        self._forget_hub()
        if not finished:
            raise TimeoutError(f"the app server did not stop within {timeout}s")
        if self._error is not None and self.port is not None:
            raise RuntimeError(f"the app server failed: {self._error!r}") from self._error

    @property
    def running(self) -> bool:
        return self._done is not None and not self._thread_done

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# -- HTTP ------------------------------------------------------------------------------------


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
        return self.status_code < 400

    @property
    def text(self) -> str:
        charset = self.headers.get_content_charset() or "utf-8"
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def raise_for_status(self) -> None:
        if not self.ok:
            raise urllib.error.HTTPError(
                self.url, self.status_code, self.reason, self.headers, None
            )

    def __repr__(self) -> str:
        return f"<HTTPResponse [{self.status_code}]>"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _urllib_request(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    data: bytes | str | Mapping[str, Any] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    allow_redirects: bool = True,
) -> HTTPResponse:
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
    handlers = [] if allow_redirects else [_NoRedirect()]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as resp:
            return HTTPResponse(resp.status, resp.reason, resp.headers, resp.read(), url)
    except urllib.error.HTTPError as exc:
        with exc:
            return HTTPResponse(exc.code, exc.reason, exc.headers, exc.read(), url)


# -- WebSocket -------------------------------------------------------------------------------


class WebSocketRejected(Exception):
    """The server answered the opening handshake with something other than `101`."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"WebSocket handshake rejected: {status} {reason}: {body[:300]!r}")
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case names
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.body)


class WebSocketClosed(ConnectionError):
    """The session is closed: `receive` found no more messages, or `send` came too late."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(
            f"the WebSocket session is closed (code {code}{', ' if reason else ''}{reason})"
        )
        self.code = code
        self.reason = reason


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
) -> tuple[socket.socket, dict[str, str], bytes]:
    """Connect and complete the opening handshake.

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
        self._parser = FrameParser(max_message_size=max_message_size, expect_masked=False)
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
        if isinstance(data, str):
            opcode, payload = OP_TEXT, data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            opcode, payload = OP_BINARY, bytes(data)
        else:
            from ..models import dumps

            opcode, payload = OP_TEXT, dumps(data).encode("utf-8")
        if self._finished.is_set():
            raise WebSocketClosed(self.close_code, self.close_reason)
        try:
            return self._send_frame(opcode, payload)
        except OSError as exc:  # the server dropped the connection under us
            raise WebSocketClosed(self.close_code or 1006, str(exc)) from exc

    def send_json(self, value: Any) -> int:
        from ..models import dumps

        return self.send(dumps(value))

    def ping(self, payload: bytes = b"") -> None:
        self._send_frame(OP_PING, payload)

    # -- receiving ------------------------------------------------------------------------------

    def receive(self, timeout: float | None = 5.0) -> str | bytes:
        try:
            item = self._messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message on {self.path} within {timeout}s") from None
        if item is _CLOSED:
            self._messages.put(_CLOSED)  # stays closed for the next call
            raise WebSocketClosed(self.close_code, self.close_reason)
        return item

    def receive_text(self, timeout: float | None = 5.0) -> str:
        message = self.receive(timeout)
        if not isinstance(message, str):
            raise TypeError(f"expected a text message, got binary {message[:60]!r}")
        return message

    def receive_bytes(self, timeout: float | None = 5.0) -> bytes:
        message = self.receive(timeout)
        if not isinstance(message, bytes):
            raise TypeError(f"expected a binary message, got text {message[:60]!r}")
        return message

    def receive_json(self, timeout: float | None = 5.0) -> Any:
        return jsonlib.loads(self.receive(timeout))

    # -- closing --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
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


# -- the test client -------------------------------------------------------------------------


class TestClient:
    """Run an app for a test and talk to it over HTTP and WebSocket.

    `target` is an `App` (served in this process by `AppServer`) or a `"module:app"` string
    (served in a child process by `ServerProcess`; `mode`, `cwd`, `env`, `args` and other
    keyword arguments go to it). Use it as a context manager, or `start()`/`stop()`.

    - `.url`, `.ws_url(path)`, `.server` (the AppServer or ServerProcess), `.app` (in-process).
    - `.get/.post/.put/.patch/.delete/.head/.options(path, **kwargs)` and `.request(method,
      path, **kwargs)`: `path` is relative to `.url`. With `requests` installed they are
      `requests.Session` calls (any of its keyword arguments) returning `requests.Response`;
      without it a urllib fallback takes `params`, `data`, `json`, `headers`, `timeout`,
      `allow_redirects` and returns an `HTTPResponse` with the same common attributes.
    - `.websocket_connect(path, headers=None, subprotocols=None)` → `WebSocketSession`; a
      refused handshake raises `WebSocketRejected` (`.status`, `.body`, `.json()`).
    `stop()` closes the sessions still open, then stops the server.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        target: App | str,
        *,
        mode: str = "run",
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
        host: str = "127.0.0.1",
        timeout: float = 10.0,
        use_requests: bool | None = None,
        **server_options: Any,
    ) -> None:
        from ..app import App

        self.timeout = timeout
        self.app: App | None = None
        self.server: AppServer | ServerProcess
        if isinstance(target, App):
            if cwd is not None or env is not None or tuple(args) or mode != "run":
                raise TypeError("mode, cwd, env and args are for a 'module:app' target")
            self.app = target
            self.server = AppServer(target, host=host, **server_options)
        elif isinstance(target, str):
            from . import ServerProcess

            self.server = ServerProcess(
                target, mode=mode, cwd=cwd, env=env, args=args, host=host, **server_options
            )
        else:
            raise TypeError(f"TestClient needs an App or a 'module:app' string, not {target!r}")
        if use_requests is None:
            try:
                import requests  # noqa: F401
            except ImportError:
                use_requests = False
            else:
                use_requests = True
        self._use_requests = use_requests
        self._http: Any = None
        self._sessions: weakref.WeakSet[WebSocketSession] = weakref.WeakSet()
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> TestClient:
        if not self._started:
            self.server.start()
            self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            for ws in list(self._sessions):
                with contextlib.suppress(Exception):
                    ws.close(timeout=2.0)
            if self._http is not None:
                self._http.close()
                self._http = None
        finally:
            self.server.stop()

    close = stop

    def __enter__(self) -> TestClient:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        port = self.server.port
        if port is None:
            raise RuntimeError("the server is not running: start() the client first")
        return port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    # -- HTTP -----------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = path if "://" in path else self.url + path
        kwargs.setdefault("timeout", self.timeout)
        if self._use_requests:
            if self._http is None:
                import requests

                self._http = requests.Session()
            return self._http.request(method, url, **kwargs)
        return _urllib_request(method, url, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Any:
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> Any:
        return self.request("OPTIONS", path, **kwargs)

    # -- WebSocket ------------------------------------------------------------------------------

    def websocket_connect(
        self,
        path: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        subprotocols: Iterable[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> WebSocketSession:
        """Open a WebSocket session on `path` (query string allowed)."""
        sock, response_headers, initial = open_websocket(
            self.host,
            self.port,
            path,
            headers=headers,
            subprotocols=subprotocols,
            timeout=self.timeout if timeout is None else timeout,
        )
        ws = WebSocketSession(sock, path, response_headers, initial)
        self._sessions.add(ws)
        return ws
