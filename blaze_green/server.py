"""The embedded server: gevent's pywsgi with our handler, signals and graceful shutdown.

The handler subclasses gevent-websocket's WebSocketHandler for the upgrade plumbing, but leaves
the handshake decision to the app: instead of answering `101` itself, it puts an `upgrade`
callable in the environ, which the app calls only once every check has passed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, cast

import gevent
import gevent.socket
from gevent import Timeout
from gevent.event import Event
from gevent.pywsgi import MAX_REQUEST_LINE, WSGIHandler, WSGIServer
from gevent.ssl import SSLSocket
from geventwebsocket.handler import WebSocketHandler

from . import patching
from .clientlog import client_error
from .config import Config
from .headers import RequestHeaders
from .http import status_line
from .models import dumps
from .mount import file_to_send
from .tls import server_context
from .tls_server import TLSHandshakeMixin
from .ws.handshake import UPGRADE_KEY
from .ws.lifecycle import CloseCode

if TYPE_CHECKING:
    from .app import App

__all__ = ["UpgradeHandler", "EmbeddedHandler", "EmbeddedWSGIServer", "Server", "serve"]

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

_REQUEST_TOO_LONG = b"HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_CLOSE = ("close", b"")  # handle_one_request result: close without answering
_SENDFILE_CHUNK = 1 << 20  # per sendfile(2) call, between yields to the hub


_DEFAULT_CONFIG = Config()  # the timeouts for another WSGI app under our worker


def _config_of(application: Any) -> Config:
    config = getattr(application, "config", None)
    return config if isinstance(config, Config) else _DEFAULT_CONFIG


# RFC 9112 3: method SP request-target SP HTTP-version; the method is a token, the target has
# no blanks or control bytes. A bare LF ending is accepted (RFC 9112 2.2).
_REQUEST_LINE = re.compile(
    r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) HTTP/([0-9])\.([0-9])\r?\n\Z"
)
_ABSOLUTE = re.compile(r"(?i)(https?)://([^/?#]*)(.*)\Z")
_DIGITS = re.compile(r"[0-9]{1,18}\Z")


class _BadRequest(Exception):
    """A request refused before the app sees it: answered with `code` and closed."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UpgradeHandler(WebSocketHandler):  # type: ignore[misc]
    """pywsgi handler: strict HTTP/1.1 framing, timeouts on every stage, TCP_NODELAY, each
    response in one write, upgrades decided by the app."""

    _upgraded = False
    _served = False  # a request was answered on this connection (the next wait is keep-alive)
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
        self._limits = limits = _config_of(server.application)  # timeouts, max_body_size
        self._write_timeout = sock.gettimeout()  # writes and upgraded sessions keep it
        # One deadline timer per connection, started for each request's head (request line
        # and headers) and cancelled when it is in: a deadline, not an idle timer, so
        # trickling bytes cannot extend it.
        self._deadline = Timeout(limits.header_timeout)
        # The gunicorn worker's pool tracks idle connections, to reclaim them when it is full
        # (blaze_green.idlepool); the embedded server's has no pool.
        self._idle = getattr(getattr(server, "pool", None), "idle", None)

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            self._deadline.close()

    def handle_one_request(self) -> Any:
        """One request: wait for it (keep-alive timeout), read its head (header timeout),
        check its framing, run the app. Returns None to close, True to go on, or
        (status, bytes) for pywsgi to send before closing."""
        rfile = self.rfile
        if rfile.closed:
            return None
        limits = self._limits
        sock = self.socket
        deadline = self._deadline
        idle = self._idle
        started = False
        try:
            if idle is not None:
                idle.waiting(self, sock)  # reclaimable until the request's first byte
            if self._served:
                # Idle between requests: the first byte must come within keepalive_timeout.
                # (peek returns what is buffered, or does the one read readline would do.)
                sock.settimeout(limits.keepalive_timeout)
                if not rfile.peek(1):
                    return None
                sock.settimeout(limits.body_timeout)
                deadline.start()
                started = True
            else:
                # The connection's first request: the deadline runs from the accept.
                sock.settimeout(limits.body_timeout)
                deadline.start()
                if not rfile.peek(1):
                    return None
                started = True
            if idle is not None:
                idle.active(self)
            error = self._read_head()
        except Timeout as exc:
            if exc is not deadline:
                raise
            return self._head_timed_out(started)
        except (OSError, ValueError):
            # reset, EOF, an idle keep-alive timeout (socket.timeout), a closed reader
            return None
        finally:
            deadline.cancel()
            if idle is not None:
                idle.active(self)
        if error is not None:
            return None if error is _CLOSE else error
        self.environ = self.get_environ()
        self.application = self.server.application
        self.handle_one_response()
        self._served = True
        if self.close_connection or rfile.closed:
            return None
        # Keep-alive: the next request may already be buffered, and we would serve it at
        # once; yield first so every connection gets its turn (bounded tail latency).
        gevent.sleep(0)
        return True

    def _read_head(self) -> Any:
        """Read and check the request line and headers; None when the request may run."""
        line = self.rfile.readline(MAX_REQUEST_LINE)
        if len(line) >= MAX_REQUEST_LINE:
            self.close_connection = True
            return ("414", _REQUEST_TOO_LONG)
        if not line.endswith(b"\n"):
            return _CLOSE  # the connection ended mid-line: nothing to answer
        self.requestline = line.decode("latin-1")
        self.response_length = 0
        try:
            self.read_request(self.requestline)
        except _BadRequest as exc:
            if exc.code == 0:
                return _CLOSE
            return self._refuse(exc.code, exc.message)
        return None

    def read_request(self, raw_requestline: str) -> bool:
        """Parse and check the request line and headers (RFC 9112); raises _BadRequest."""
        match = _REQUEST_LINE.match(raw_requestline)
        self.requestline = raw_requestline.rstrip()
        if match is None:
            raise _BadRequest(400, "malformed request line (HTTP/1.0 or HTTP/1.1 required)")
        command, target, major, minor = match.groups()
        if major != "1":
            if major == "0":
                raise _BadRequest(400, "HTTP/0.9 is not supported")
            raise _BadRequest(505, f"HTTP/{major}.{minor} is not supported on HTTP/1 framing")
        self.command = command
        self.request_version = version = "HTTP/1.0" if minor == "0" else "HTTP/1.1"
        authority = None
        if target[0] != "/":
            absolute = _ABSOLUTE.match(target)
            if absolute is not None:  # absolute-form (RFC 9112 3.2.2): route by its path
                authority = absolute[2]
                rest = absolute[3]
                target = rest if rest.startswith("/") else "/" + rest
            elif target != "*" or command != "OPTIONS":
                raise _BadRequest(400, "request target must be a path or an absolute URI")
        self.path = target

        self.headers = headers = self.MessageClass(self.rfile, 0)
        if headers.status:
            raise _BadRequest(headers.code, headers.status)
        first = headers.first
        if "host" not in first:
            if version == "HTTP/1.1":
                raise _BadRequest(400, "HTTP/1.1 request without a Host header")
        elif len(headers.values("host")) > 1:
            raise _BadRequest(400, "more than one Host header")
        if authority is not None:
            headers.replace("Host", authority)  # RFC 9112 3.2.2: the target's authority wins

        close = False
        self.content_length = None
        if "transfer-encoding" in first:
            codings = [
                c.strip().lower() for v in headers.values("transfer-encoding") for c in v.split(",")
            ]
            codings = [c for c in codings if c]
            if not codings or codings[-1] != "chunked":
                raise _BadRequest(400, "Transfer-Encoding must end with chunked")
            if len(codings) > 1:
                if "chunked" in codings[:-1]:
                    raise _BadRequest(400, "chunked applied more than once")
                raise _BadRequest(501, f"unsupported transfer coding {codings[0]!r}")
            if "content-length" in first:
                # RFC 9112 6.1 allows processing this as chunked, but a proxy in front may
                # have used the length: refuse it, as nginx does, rather than guess.
                raise _BadRequest(
                    400, "Transfer-Encoding and Content-Length together: send only one"
                )
            if version == "HTTP/1.0":
                close = True  # RFC 9112 6.1: the framing of an HTTP/1.0 TE request is suspect
        elif "content-length" in first:
            values = headers.values("content-length")
            lengths = {p.strip() for v in values for p in v.split(",")}
            if len(lengths) != 1:
                raise _BadRequest(400, "conflicting Content-Length values")
            length = lengths.pop()
            if _DIGITS.match(length) is None:
                raise _BadRequest(400, f"invalid Content-Length {length[:30]!r}")
            if len(values) > 1 or values[0] != length:
                headers.replace("Content-Length", length)
            self.content_length = int(length)

        connection = first.get("connection", "")
        if version == "HTTP/1.1":
            self.close_connection = close or connection.lower() == "close"
        else:
            self.close_connection = close or connection.lower() != "keep-alive"
        return True

    def _refuse(self, code: int, message: str) -> tuple[str, bytes]:
        """The answer to a request refused before the app: JSON body, Connection: close."""
        self.close_connection = True
        client_error(self.client_address, "%s (answered %d)", message, code)
        body = dumps({"error": message, "status": code}).encode()
        head = (
            f"HTTP/1.1 {status_line(code)}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._orig_status = str(code)
        return (str(code), head.encode("latin-1") + body)

    def _head_timed_out(self, started: bool) -> None:
        """header_timeout passed: close; a 408 first if part of a request had arrived."""
        self.close_connection = True
        if not started:
            log.debug("closing %s: no request within header_timeout", self.client_address)
            return None
        client_error(
            self.client_address,
            "request line and headers not complete within header_timeout (%ss): closed",
            self._limits.header_timeout,
        )
        body = b'{"error":"request header timeout","status":408}'
        response = (
            b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        with contextlib.suppress(OSError):
            self.socket.settimeout(0.0)  # best effort: never wait on this client again
            self.socket.send(response)
        return None

    def run_application(self) -> None:
        if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            self.environ[UPGRADE_KEY] = self._switch_protocols
            self.environ["wsgi.websocket_version"] = "13"
        # Not WebSocketHandler.run_application: that one answers 101 before the app runs.
        try:
            WSGIHandler.run_application(self)
        finally:
            self._finish_body()

    def _finish_body(self) -> None:
        """Read what the app left of the request body, up to max_body_size, so that the
        connection can serve the next request; past that (or on a bad or stalled body) the
        connection closes instead. Then pywsgi has nothing left to drain."""
        stream = self.wsgi_input
        if stream is None or not (
            stream.chunked_input or stream.position < (stream.content_length or 0)
        ):
            return  # no body, or all of it read: the fast path
        try:
            if not self.close_connection and not self._upgraded and self.socket is not None:
                self._drain(stream, self._limits.max_body_size)
        except OSError as exc:  # also pywsgi's bad-chunk error and socket.timeout
            self.close_connection = True
            client_error(self.client_address, "request body not drained (%s): closed", exc)
        finally:
            stream.chunked_input = False
            stream.content_length = stream.position

    def _drain(self, stream: Any, limit: int | None) -> None:
        if not stream.chunked_input:
            if limit is not None and stream.content_length - stream.position > limit:
                self.close_connection = True
                return
            while stream.read(65536):
                pass
            return
        drained = 0
        while limit is None or drained <= limit:
            data = stream.read(65536 if limit is None else min(65536, limit + 1 - drained))
            if not data:
                return
            drained += len(data)
        self.close_connection = True  # a chunked body longer than max_body_size: not drained

    def _switch_protocols(self, headers: list[tuple[str, str]]) -> tuple[Any, bytes]:
        """Send the 101 and hand the socket over; returns (socket, bytes already read)."""
        self.start_response("101 Switching Protocols", headers)
        self.write(b"")
        self._upgraded = True
        self.close_connection = True
        # Bytes the client sent right after its handshake may sit in the HTTP reader's buffer:
        # take them without blocking, then close the reader to free its buffer.
        sock = self.socket
        try:
            sock.settimeout(0.0)
            initial = self.rfile.read1(65536) or b""
        except OSError:
            initial = b""
        finally:
            # The session's socket gets the timeout the connection was accepted with (the
            # HTTP stages' timeouts do not apply to it: its heartbeat does).
            sock.settimeout(self._write_timeout)
        # The reader's 8 KiB buffer would otherwise live as long as the session; the session
        # reads the socket directly. (Closing it leaves the socket open.)
        self.rfile.close()
        # Detach: the session gets its own descriptor (the server closes this one when the
        # handler returns) and runs on a greenlet of its own with a shallow stack, while this
        # handler, its greenlet, buffers and parsed headers go away: ~6 KiB per idle session
        # instead of ~17.
        # A TLS socket cannot be dup()ed (its SSL state lives in the object): the session takes
        # this one, and keeps it open past the server's close when this handler returns.
        session_sock = sock if isinstance(sock, SSLSocket) else sock.dup()
        self.socket: Any = None
        return session_sock, initial

    def process_result(self) -> None:
        if self._upgraded:
            return  # the WebSocket session owns the socket; there is no HTTP body to write
        if self.command == "HEAD":
            # The headers a GET would get, never a body (RFC 9110 9.3.2), whatever the WSGI
            # app returned: a generator app runs to its first chunk only (it may call
            # start_response then); the server closes it afterwards.
            if not self.status:
                for _ in self.result:
                    break
            if self.status and not self.headers_sent:
                self._write_with_headers(b"")
            return
        if self._fd >= 0 and self._send_file():
            return
        super().process_result()

    def _send_file(self) -> bool:
        """A `wsgi.file_wrapper` response of a regular file with a Content-Length, on a plain
        socket: sent with sendfile(2), the bytes never entering Python. False (nothing sent)
        when it is not one: pywsgi iterates it instead."""
        length = self.provided_content_length
        if self.headers_sent or not self.status or not (length and length.isdigit()):
            return False
        found = file_to_send(self.result)
        if found is None:
            return False
        fd, offset = found
        self._write_with_headers(b"")
        remaining = int(length)
        while remaining > 0:
            try:
                sent = os.sendfile(self._fd, fd, offset, min(remaining, _SENDFILE_CHUNK))
            except BlockingIOError:
                gevent.socket.wait_write(self._fd, timeout=self._write_timeout)
                continue
            if sent == 0:  # the file is shorter than its Content-Length: cut, and close
                self.close_connection = True
                break
            offset += sent
            remaining -= sent
            self.response_length += sent
            gevent.sleep(0)  # a fast reader must not keep the other greenlets waiting
        return True

    def _write(self, data: bytes) -> None:
        if self.command != "HEAD":  # also the write() callable's: no body after HEAD
            super()._write(data)

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
        if data and self.command != "HEAD":
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
        # We close after this response (the client asked, or its framing was suspect): say so
        # (RFC 9112 9.6), unless the app did.
        if (
            self.close_connection
            and self.request_version == "HTTP/1.1"
            and self.code != 101
            and not any(name.lower() == b"connection" for name, _ in self.response_headers)
        ):
            self.response_headers.append((b"Connection", b"close"))
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
            # The rest waits for the client: with the connection's own timeout, not the body
            # read timeout (gevent's sendall takes a socket timeout as a deadline for it all).
            sock = self.socket
            read_timeout = sock.gettimeout()
            sock.settimeout(self._write_timeout)
            try:
                super()._sendall(memoryview(data)[sent:])
            finally:
                sock.settimeout(read_timeout)


class EmbeddedHandler(UpgradeHandler):
    """The embedded server's handler: the access log goes through `logging`, when enabled."""

    def log_request(self) -> None:
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(self.format_request())


class EmbeddedWSGIServer(TLSHandshakeMixin, WSGIServer):  # type: ignore[misc]
    """pywsgi's server; with TLS, failed handshakes are logged as client errors."""


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
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.on_started = on_started
        self.scheme = "https" if ssl_context is not None else "http"
        self.restarting = False  # stopped to be restarted (SIGHUP): sessions get 1012
        self._stopping = Event()
        listen_on: Any = listener if listener is not None else (host, port)
        tls: dict[str, Any] = {"ssl_context": ssl_context} if ssl_context is not None else {}
        self.wsgi = EmbeddedWSGIServer(
            listen_on,
            app,
            handler_class=EmbeddedHandler,
            log=None,
            error_log=logging.getLogger("blaze_green.server"),
            backlog=None if listener is not None else backlog,
            environ={"SERVER_NAME": host, "SERVER_PORT": str(port)},
            **tls,
        )
        self.wsgi.handshake_timeout = app.config.header_timeout

    @property
    def address(self) -> tuple[str, int]:
        return cast("tuple[str, int]", self.wsgi.address)

    def start(self) -> None:
        self.wsgi.start()
        host, port = self.wsgi.address[:2]
        log.info("blaze_green listening on %s://%s:%s", self.scheme, host, port)
        self.app.runtime.start()
        if self.on_started is not None:
            self.on_started(self)

    def stop(self) -> None:
        self._stopping.set()

    def run(self, install_signals: bool = True) -> None:
        handlers = []
        if install_signals:
            # SIGHUP: `--reload`'s supervisor restarts us; sessions close with 1012, not 1001.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                handlers.append(gevent.signal_handler(sig, self._on_signal, sig))
        try:
            self.start()
            self._stopping.wait()
            self.shutdown()
        finally:
            for h in handlers:
                h.cancel()

    def _on_signal(self, sig: int) -> None:
        if sig == signal.SIGHUP:
            log.info("received SIGHUP: restarting (sessions close with 1012)")
            self.restarting = True
        else:
            log.info("received %s: shutting down", signal.Signals(sig).name)
        self.stop()

    def shutdown(self) -> None:
        graceful_shutdown(
            self.app, [self.wsgi], self.app.config.shutdown_timeout, restart=self.restarting
        )


def graceful_shutdown(app: App, servers: list[Any], timeout: float, restart: bool = False) -> None:
    """Stop accepting, close every session with 1001 (1012 with `restart`: clients should
    reconnect) and wait for them (dropping those still open near the deadline; their on_close
    runs), kill tasks, stop the servers.

    Used by the embedded server and by the gunicorn worker.
    """
    deadline = time.monotonic() + timeout
    for server in servers:
        server.close()  # stop accepting; open connections go on
    if restart:
        app.runtime.shutdown(timeout, CloseCode.SERVICE_RESTART, "server restarting")
    else:
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
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    listener: socket.socket | None = None,
) -> None:
    """Serve `app` until SIGINT/SIGTERM (app.listen and `blaze-green run`; SIGHUP: exit too,
    closing sessions with 1012 as for a restart). `debug` (or App(debug=True)) turns on debug
    logging and gevent's hub-blocking monitor. `certfile` and `keyfile` (PEM), or an
    `ssl_context`, serve https:// and wss:// (tls.TLSConfigError when they cannot be used).
    `listener`: a bound, listening socket to serve on instead of host:port (`--reload`'s
    supervisor passes one)."""
    patching.require_patched()
    context = server_context(certfile, keyfile, ssl_context)  # checked before binding
    debug = debug or app.config.debug
    configure_logging(access_log_enabled, debug)
    if debug:
        patching.start_blocking_monitor()
    server = Server(app, host, port, listener=listener, on_started=on_ready, ssl_context=context)
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
