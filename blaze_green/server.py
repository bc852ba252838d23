"""The embedded server: gevent's pywsgi with our handler, signals and graceful shutdown.

The handler subclasses gevent-websocket's WebSocketHandler for the upgrade plumbing, but leaves
the handshake decision to the app: instead of answering `101` itself, it puts an `upgrade`
callable in the environ, which the app calls only once every check has passed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, cast

import gevent
import gevent.socket
from gevent.event import Event
from gevent.pywsgi import WSGIHandler, WSGIServer
from geventwebsocket.handler import WebSocketHandler

from . import patching
from .headers import RequestHeaders
from .ws.handshake import UPGRADE_KEY

if TYPE_CHECKING:
    from .app import App

__all__ = ["UpgradeHandler", "EmbeddedHandler", "Server", "serve"]

log = logging.getLogger("blaze_green")
access_log = logging.getLogger("blaze_green.access")


def http_date() -> bytes:
    """The `Date` header's value, formatted once per second rather than once per response."""
    global _date
    second = int(time.time())
    cached = _date
    if cached[0] != second:
        cached = _date = (second, formatdate(second, usegmt=True).encode("ascii"))
    return cached[1]


_date: tuple[int, bytes] = (-1, b"")


class UpgradeHandler(WebSocketHandler):  # type: ignore[misc]
    """pywsgi handler: TCP_NODELAY, each response in one write, upgrades decided by the app."""

    _upgraded = False
    MessageClass = RequestHeaders  # instead of the email package's parser: see headers.py

    def __init__(self, sock: Any, address: Any, server: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, address, server, *args, **kwargs)
        # Responses leave in one write, so Nagle has nothing to merge; without NODELAY a
        # keep-alive client can wait ~40 ms for a delayed ACK. (Not TCP: nothing to set.)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A plain gevent socket's descriptor (non-blocking), for a first send without gevent's
        # sendall (which asks the kernel for SO_SNDBUF on every call); never a TLS socket's.
        self._fd = sock.fileno() if type(sock) is gevent.socket.socket else -1

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if result is True:
            # Keep-alive: the next request may already be buffered, and pywsgi would serve it
            # at once; yield first so every connection gets its turn (bounded tail latency).
            gevent.sleep(0)
        return result

    def run_application(self) -> None:
        if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            self.environ[UPGRADE_KEY] = self._switch_protocols
            self.environ["wsgi.websocket_version"] = "13"
        # Not WebSocketHandler.run_application: that one answers 101 before the app runs.
        WSGIHandler.run_application(self)

    def _switch_protocols(self, headers: list[tuple[str, str]]) -> tuple[Any, bytes]:
        """Send the 101 and hand the socket over; returns (socket, bytes already read)."""
        self.start_response("101 Switching Protocols", headers)
        self.write(b"")
        self._upgraded = True
        self.close_connection = True
        # Bytes the client sent right after its handshake may sit in the HTTP reader's buffer:
        # take them without blocking, then close the reader to free its buffer.
        sock = self.socket
        timeout = sock.gettimeout()
        try:
            sock.settimeout(0.0)
            initial = self.rfile.read1(65536) or b""
        except OSError:
            initial = b""
        finally:
            sock.settimeout(timeout)
        # The reader's 8 KiB buffer would otherwise live as long as the session; the session
        # reads the socket directly. (Closing it leaves the socket open.)
        self.rfile.close()
        # Detach: the session gets its own descriptor (the server closes this one when the
        # handler returns) and runs on a greenlet of its own with a shallow stack, while this
        # handler, its greenlet, buffers and parsed headers go away: ~6 KiB per idle session
        # instead of ~17.
        session_sock = sock.dup()
        self.socket: Any = None
        return session_sock, initial

    def process_result(self) -> None:
        if self._upgraded:
            return  # the WebSocket session owns the socket; there is no HTTP body to write
        super().process_result()

    def _write_with_headers(self, data: bytes) -> None:
        # One send for status line, headers and body (pywsgi sends them separately).
        self.headers_sent = True
        self.finalize_headers()
        towrite = bytearray(b"HTTP/1.1 ")
        towrite += self.status
        towrite += b"\r\n"
        for header, value in self.response_headers:
            towrite += header
            towrite += b": "
            towrite += value
            towrite += b"\r\n"
        towrite += b"\r\n"
        if data:
            if self.response_use_chunked:
                towrite += b"%x\r\n" % len(data)
                towrite += data
                towrite += b"\r\n"
            else:
                towrite += data
        self._sendall(towrite)

    def finalize_headers(self) -> None:
        if self.provided_date is None:
            self.response_headers.append((b"Date", http_date()))
            self.provided_date: Any = "yes"  # so pywsgi does not format its own
        super().finalize_headers()

    def _sendall(self, data: bytes | bytearray) -> None:
        if self._fd < 0 or self.socket is None:
            super()._sendall(data)
            return
        # A small response almost always fits the socket buffer: one send, no more syscalls.
        # Anything else (a full buffer, an error) is pywsgi's sendall's to wait for or report.
        try:
            sent = os.write(self._fd, data)
        except OSError:
            sent = 0
        self.response_length += sent
        if sent < len(data):
            super()._sendall(memoryview(data)[sent:])


class EmbeddedHandler(UpgradeHandler):
    """The embedded server's handler: the access log goes through `logging`, when enabled."""

    def log_request(self) -> None:
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(self.format_request())


class Server:
    """The embedded server around one app; `run()` blocks until a signal or `stop()`."""

    def __init__(
        self,
        app: App,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        listener: socket.socket | None = None,
        backlog: int = 2048,
        on_started: Callable[[Server], Any] | None = None,
    ) -> None:
        self.app = app
        self.on_started = on_started
        self._stopping = Event()
        listen_on: Any = listener if listener is not None else (host, port)
        self.wsgi = WSGIServer(
            listen_on,
            app,
            handler_class=EmbeddedHandler,
            log=None,
            error_log=logging.getLogger("blaze_green.server"),
            backlog=None if listener is not None else backlog,
            environ={"SERVER_NAME": host, "SERVER_PORT": str(port)},
        )

    @property
    def address(self) -> tuple[str, int]:
        return cast("tuple[str, int]", self.wsgi.address)

    def start(self) -> None:
        self.wsgi.start()
        host, port = self.wsgi.address[:2]
        log.info("blaze_green listening on http://%s:%s", host, port)
        self.app.runtime.start()
        if self.on_started is not None:
            self.on_started(self)

    def stop(self) -> None:
        self._stopping.set()

    def run(self, install_signals: bool = True) -> None:
        handlers = []
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers.append(gevent.signal_handler(sig, self._on_signal, sig))
        try:
            self.start()
            self._stopping.wait()
            self.shutdown()
        finally:
            for h in handlers:
                h.cancel()

    def _on_signal(self, sig: int) -> None:
        log.info("received %s: shutting down", signal.Signals(sig).name)
        self.stop()

    def shutdown(self) -> None:
        graceful_shutdown(self.app, [self.wsgi], self.app.config.shutdown_timeout)


def graceful_shutdown(app: App, servers: list[Any], timeout: float) -> None:
    """Stop accepting, close every session with 1001 and wait for them (dropping those still
    open near the deadline; their on_close runs), kill tasks, stop the servers.

    Used by the embedded server and by the gunicorn worker.
    """
    deadline = time.monotonic() + timeout
    for server in servers:
        server.close()  # stop accepting; open connections go on
    app.runtime.shutdown(timeout)
    remaining = max(0.0, deadline - time.monotonic())
    for server in servers:
        server.stop(timeout=min(remaining, 1.0))
    log.info("blaze_green stopped")


def serve(
    app: App,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    access_log_enabled: bool = False,
    debug: bool = False,
    on_ready: Callable[[Server], Any] | None = None,
) -> None:
    """Serve `app` until SIGINT/SIGTERM (app.listen and `blaze-green run`). `debug` (or
    App(debug=True)) turns on debug logging and gevent's hub-blocking monitor."""
    patching.require_patched()
    debug = debug or app.config.debug
    configure_logging(access_log_enabled, debug)
    if debug:
        patching.start_blocking_monitor()
    server = Server(app, host, port, on_started=on_ready)
    server.run()


def configure_logging(access: bool, debug: bool = False) -> None:
    """Console logging for the embedded server, unless the application configured its own."""
    root = logging.getLogger()
    pkg = logging.getLogger("blaze_green")
    if not root.handlers and not pkg.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        pkg.addHandler(handler)
        pkg.propagate = False
    if pkg.level == logging.NOTSET:
        pkg.setLevel(logging.DEBUG if debug else logging.INFO)
    access_log.setLevel(logging.INFO if access else logging.WARNING)
