"""App: routes, configuration, the WSGI entry point, and the facade over sessions and tasks."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import gevent
from gevent import Greenlet, monkey

from .http import HTTPError, Request, Response, to_response
from .routing import Router
from .tasks import Task, TaskGroup, resolve
from .ws import handshake
from .ws.frames import encode_frame
from .ws.registry import Registry
from .ws.session import WebSocket, WriteScheduler, encode_message

__all__ = ["App", "Config", "WebSocketHandlers"]

log = logging.getLogger("blaze_green")

MiB = 1 << 20
WORKER_CLASS = "blaze_green.worker.GeventWebSocketWorker"
UPGRADE_KEY = "blaze_green.upgrade"  # set in the environ by our server handlers

# Real OS-thread primitives, even when threading is patched (greenlet ids are not threads).
_os_thread_id = monkey.get_original("_thread", "get_ident")
_os_lock = monkey.get_original("_thread", "allocate_lock")

Handler = Callable[..., Any]
BeforeOpen = Callable[[Request], Any]


class WebSocketHandlers(NamedTuple):
    """The callbacks of a WebSocket route; each optional."""

    on_open: Callable[[WebSocket], Any] | None = None
    on_message: Callable[[WebSocket, str | bytes], Any] | None = None
    on_close: Callable[[WebSocket], Any] | None = None


@dataclasses.dataclass
class Config:
    max_message_size: int | None = MiB
    max_body_size: int | None = 10 * MiB
    send_queue_size: int = 1024
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    allowed_origins: Any = None
    max_connections: int | None = None
    shutdown_timeout: float = 10.0
    close_timeout: float = 5.0
    coalesce_window: float = 0.002
    broker: str | None = None
    debug: bool = False

    def __post_init__(self) -> None:
        if self.send_queue_size < 1:
            raise ValueError("send_queue_size must be at least 1")
        for name in ("max_message_size", "max_body_size", "max_connections"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None")
        if self.shutdown_timeout < 0 or self.close_timeout < 0 or self.coalesce_window < 0:
            raise ValueError("timeouts must be >= 0")


@dataclasses.dataclass
class _WsRoute:
    handlers: WebSocketHandlers
    before_open: BeforeOpen | None
    subprotocols: tuple[str, ...]


_INTERNAL_ERROR = {"error": "internal server error", "status": 500}


class App:
    """A blaze_green application: a WSGI callable with HTTP and WebSocket routes."""

    def __init__(self, *, before_open: BeforeOpen | None = None, **config: Any) -> None:
        try:
            self.config = Config(**config)
        except TypeError as exc:
            known = ", ".join(f.name for f in dataclasses.fields(Config))
            raise TypeError(f"{exc}; App() takes: before_open, {known}") from None
        self.before_open = before_open
        self._http: Router[Handler] = Router()
        self._ws: Router[_WsRoute] = Router()
        self._registry = Registry()
        self._writes = WriteScheduler(self.config.coalesce_window)
        self._tasks = TaskGroup()
        self._ws_reserved = 0  # sessions open or mid-handshake, for max_connections
        self._on_start: list[Callable[[], Any]] = []
        self._hub_thread: int | None = None  # the OS thread running the server's hub
        self._hub_loop: Any = None
        self._broker: Any = None  # a blaze_green.broker.Broker once the server runs with one

    def __getattr__(self, name: str) -> Any:
        # Config values read as attributes: app.max_message_size, app.ping_interval, ...
        config = self.__dict__.get("config")
        if config is not None and name in Config.__dataclass_fields__:
            return getattr(config, name)
        raise AttributeError(name)

    # -- HTTP routes ----------------------------------------------------------------------

    def route(
        self, path: str, methods: list[str] | tuple[str, ...], handler: Handler | None = None
    ):
        """Register `handler` for `path` and each of `methods`; a decorator without handler."""

        def register(fn: Handler) -> Handler:
            for method in methods:
                self._http.add(path, method.upper(), fn, signature_of=fn)
            return fn

        return register(handler) if handler is not None else register

    def get(self, path: str, handler: Handler | None = None):
        return self.route(path, ("GET",), handler)

    def post(self, path: str, handler: Handler | None = None):
        return self.route(path, ("POST",), handler)

    def put(self, path: str, handler: Handler | None = None):
        return self.route(path, ("PUT",), handler)

    def patch(self, path: str, handler: Handler | None = None):
        return self.route(path, ("PATCH",), handler)

    def delete(self, path: str, handler: Handler | None = None):
        return self.route(path, ("DELETE",), handler)

    # -- WebSocket routes -----------------------------------------------------------------

    def ws(
        self,
        path: str,
        handlers: WebSocketHandlers | None = None,
        *,
        on_open: Callable[[WebSocket], Any] | None = None,
        on_message: Callable[[WebSocket, Any], Any] | None = None,
        on_close: Callable[[WebSocket], Any] | None = None,
        before_open: BeforeOpen | None = None,
        subprotocols: list[str] | tuple[str, ...] | None = None,
    ) -> WebSocketHandlers:
        """Register a WebSocket route. `:name` segments are allowed; their values are in
        `ws.params` and the session is registered under its actual path."""
        if handlers is not None and (on_open or on_message or on_close):
            raise TypeError(
                "pass WebSocketHandlers(...) or on_open=/on_message=/on_close=, not both"
            )
        if handlers is None:
            handlers = WebSocketHandlers(on_open, on_message, on_close)
        for cb in handlers:
            if cb is not None and not callable(cb):
                raise TypeError(f"WebSocket callbacks must be callable, got {cb!r}")
        self._ws.add(path, "WS", _WsRoute(handlers, before_open, tuple(subprotocols or ())))
        return handlers

    # -- sessions, broadcast, tasks -------------------------------------------------------

    def broadcast(self, path: str, data: Any, exclude: Any = None) -> int:
        """Send `data` to every session on `path`; serialized once and framed once.

        Returns how many sessions in this process it was handed to. With a broker, the
        serialized payload is also published once for the other processes. Safe from any
        greenlet, and from an OS thread: there the message is serialized and framed in the
        calling thread, then handed to the server's hub, and the call waits (up to 10 s) for
        the count. `exclude` (a session or an iterable of them) applies to local sessions.
        """
        opcode, payload = encode_message(data)
        frame = encode_frame(opcode, payload)
        hub_thread = self._hub_thread
        if hub_thread is None or _os_thread_id() == hub_thread:
            return self._deliver(path, opcode, payload, frame, exclude)
        result: list[int] = []
        done = _os_lock()
        done.acquire()

        def deliver() -> None:
            try:
                result.append(self._deliver(path, opcode, payload, frame, exclude))
            finally:
                done.release()

        self._hub_loop.run_callback_threadsafe(deliver)
        if not done.acquire(timeout=10.0):
            raise TimeoutError("the server's hub did not run the broadcast within 10 s")
        return result[0] if result else 0

    def _deliver(self, path: str, opcode: int, payload: bytes, frame: bytes, exclude: Any) -> int:
        n = self._registry.deliver(path, frame, exclude)
        self._writes.flush_if_due()
        if self._broker is not None:
            self._broker.publish(path, opcode, payload)
        return n

    def connections(self, path: str, cluster: bool = False) -> Any:
        """The live sessions on `path` in this process (a list). With `cluster=True`, the
        number of sessions on `path` in every live process of the cluster (an int; without a
        broker, the local count)."""
        if cluster:
            if self._broker is not None:
                return self._broker.cluster_count(path)
            return len(self._registry.sessions(path))
        return self._registry.sessions(path)

    def spawn(
        self,
        fn: Callable[..., Any] | Task,
        *args: Any,
        singleton: str | None = None,
        **kwargs: Any,
    ) -> Greenlet:
        """Run `fn(*args, **kwargs)` (or a `@task` call) on its own greenlet; before the server
        runs it is held and starts with the server.

        `singleton="name"`: with a broker, the task runs in one process of the cluster at a
        time (under a lock with expiry in the broker) and moves to another process when its
        holder dies; without one it simply runs here.
        """
        if singleton is None:
            return self._tasks.spawn(fn, *args, **kwargs)
        fn, args, kwargs = resolve(fn, args, kwargs)
        return self._tasks.spawn(self._run_singleton, singleton, fn, args, kwargs)

    def _run_singleton(self, name: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if self._broker is None:
            return fn(*args, **kwargs)
        return self._broker.run_singleton(name, fn, args, kwargs)

    def on_start(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Call `fn()` when the server starts (in each worker); usable as a decorator."""
        self._on_start.append(fn)
        return fn

    # -- running --------------------------------------------------------------------------

    def listen(self, port: int = 8080, host: str = "127.0.0.1", **options: Any) -> None:
        """Serve on the embedded, monkey-patched gevent WSGI server until SIGINT/SIGTERM."""
        from .server import serve

        serve(self, host=host, port=port, **options)

    def _started(self) -> None:
        """The server runs: start held tasks (called by the server, in every worker)."""
        if self.config.broker is None:
            self.config.broker = os.environ.get("BLAZE_BROKER_URL") or None
        self._hub_thread = _os_thread_id()
        self._hub_loop = gevent.get_hub().loop
        if self.config.broker and self._broker is None:
            from .broker import make_broker

            self._broker = make_broker(self.config.broker, self)
            self._broker.start()
        for fn in self._on_start:
            fn()
        self._tasks.start()

    def _shutdown_sessions(self, code: int = 1001, reason: str = "server shutting down") -> int:
        sessions = self._registry.all_sessions()
        for ws in sessions:
            ws.close(code, reason)
        return len(sessions)

    def _stop_tasks(self) -> None:
        self._tasks.kill()
        if self._broker is not None:
            broker, self._broker = self._broker, None  # a later _started() makes a fresh one
            broker.stop()

    def _session_ended(self, ws: WebSocket) -> None:
        self._registry.unregister(ws)
        self._ws_reserved -= 1

    # -- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        if handshake.is_upgrade_request(environ):
            return self._websocket(environ, start_response)
        req = Request(environ, self.config.max_body_size)
        method = req.method
        try:
            handler, kwargs, allowed = self._http.lookup(req.path, method)
            if handler is None and method == "HEAD":
                handler, kwargs, allowed = self._http.lookup(req.path, "GET")
            if handler is None:
                raise self._no_route(req.path, allowed)
            self._check_body_size(environ)
            response = to_response(handler(req, **kwargs))
            status, headers, body = response.encode()
        except HTTPError as exc:
            status, headers, body = self._error_response(exc, environ)
        except Exception:
            log.exception("%s %s failed", method, req.path)
            status, headers, body = Response(_INTERNAL_ERROR, 500).encode()
        start_response(status, headers)
        return [] if method == "HEAD" else [body]

    def _no_route(self, path: str, allowed: set[str]) -> HTTPError:
        if allowed:
            if "GET" in allowed:
                allowed = allowed | {"HEAD"}
            return HTTPError(405, "method not allowed", [("Allow", ", ".join(sorted(allowed)))])
        if self._ws.find(path):
            return HTTPError(
                400,
                f"{path} is a WebSocket endpoint: connect with a WebSocket client "
                "(a GET with 'Upgrade: websocket')",
            )
        return HTTPError(404, f"no route for {path}")

    def _check_body_size(self, environ: dict[str, Any]) -> None:
        limit = self.config.max_body_size
        length = environ.get("CONTENT_LENGTH")
        if limit is not None and length and length.isdigit() and int(length) > limit:
            raise HTTPError(413, f"request body is {length} bytes; the limit is {limit}")

    def _error_response(self, exc: HTTPError, environ: dict[str, Any]):
        status, headers, body = exc.to_response().encode()
        if exc.status == 413:
            # Don't drain a body we refused: answer and close the connection instead.
            headers.append(("Connection", "close"))
            stream = environ.get("wsgi.input")
            if hasattr(stream, "position") and hasattr(stream, "content_length"):
                stream.content_length = stream.position
        return status, headers, body

    def _websocket(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        req = Request(environ, self.config.max_body_size)
        reserved = False
        try:
            found = self._ws.find(req.path)
            if not found:
                raise HTTPError(404, f"no WebSocket route for {req.path}")
            route_obj, params = found[0]
            route = route_obj.targets["WS"]
            upgrade = environ.get(UPGRADE_KEY)
            if upgrade is None:
                raise HTTPError(
                    400,
                    "this server cannot upgrade to WebSocket: run the app with `blaze-green run`, "
                    f"app.listen(), or gunicorn -k {WORKER_CLASS}",
                )
            key = handshake.validate(environ)
            origin = environ.get("HTTP_ORIGIN")
            if not handshake.origin_allowed(self.config.allowed_origins, origin, req):
                log.warning(
                    "refused WebSocket to %s from origin %r (allowed_origins)", req.path, origin
                )
                raise HTTPError(403, f"origin {origin} is not allowed")
            limit = self.config.max_connections
            if limit is not None and self._ws_reserved >= limit:
                log.warning(
                    "refused WebSocket to %s: max_connections (%d) reached", req.path, limit
                )
                raise HTTPError(503, f"too many WebSocket connections (max_connections={limit})")
            self._ws_reserved += 1
            reserved = True
            user_data = None
            if self.before_open is not None:
                user_data = self.before_open(req)
            if route.before_open is not None:
                route_value = route.before_open(req)
                if route_value is not None:
                    user_data = route_value
            subprotocol = handshake.select_subprotocol(
                environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL"), route.subprotocols
            )
        except HTTPError as exc:
            if reserved:
                self._ws_reserved -= 1
            status, headers, body = exc.to_response().encode()
            start_response(status, headers)
            return [body]
        except Exception:
            if reserved:
                self._ws_reserved -= 1
            log.exception("WebSocket handshake for %s failed", req.path)
            status, headers, body = Response(_INTERNAL_ERROR, 500).encode()
            start_response(status, headers)
            return [body]
        try:
            sock, initial = upgrade(handshake.response_headers(key, subprotocol))
        except BaseException:
            self._ws_reserved -= 1
            raise
        finally:
            # The callable holds the HTTP handler and its buffers; ws.environ outlives them.
            del environ[UPGRADE_KEY]
        ws = WebSocket(
            self, route.handlers, sock, environ, req.path, subprotocol, user_data, params
        )
        self._registry.register(ws)
        ws._start(initial)  # the session's own greenlet: its reader
        return []
