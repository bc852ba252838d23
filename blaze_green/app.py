"""App: routes, configuration, the WSGI entry point, and the facade over the runtime.

What runs while the app is served (sessions, writes, tasks, the broker) lives in
`app.runtime` (blaze_green.runtime.Runtime); `App` only routes requests to handlers and
sessions, and forwards `broadcast`, `connections`, `sessions` and `spawn` to the runtime.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from gevent import Greenlet

from .config import Config, OriginPolicy
from .http import HTTPError, Request, Response, to_response
from .metrics import UNMATCHED
from .mount import Mount, Mounts, WSGIApp
from .prefixes import PrefixTable, check_prefix
from .routing import Router
from .runtime import Runtime
from .static import StaticFiles
from .tasks import Task
from .ws import handshake
from .ws.session import WebSocket, WebSocketHandlers

if TYPE_CHECKING:
    import ssl

__all__ = ["App", "Config", "WebSocketHandlers"]

log = logging.getLogger("blaze_green")

WORKER_CLASS = "blaze_green.worker.GeventWebSocketWorker"

Handler = Callable[..., Any]
HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])
Fn = TypeVar("Fn", bound=Callable[[], Any])
BeforeOpen = Callable[[Request], Any]

_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(Config))
_DEFAULTS = Config()


@dataclasses.dataclass
class _WsRoute:
    handlers: WebSocketHandlers
    before_open: BeforeOpen | None
    subprotocols: tuple[str, ...]


_INTERNAL_ERROR = {"error": "internal server error", "status": 500}


class App:
    """A blaze_green application: a WSGI callable with HTTP and WebSocket routes.

    Every keyword is an option of `Config` (see the README's configuration table), checked
    here: a wrong type is a TypeError, a value out of range a ValueError, naming the option.
    """

    def __init__(
        self,
        *,
        before_open: BeforeOpen | None = None,
        max_message_size: int | None = _DEFAULTS.max_message_size,
        max_body_size: int | None = _DEFAULTS.max_body_size,
        send_queue_size: int = _DEFAULTS.send_queue_size,
        send_queue_bytes: int = _DEFAULTS.send_queue_bytes,
        max_fragments: int | None = _DEFAULTS.max_fragments,
        ping_interval: float | None = _DEFAULTS.ping_interval,
        ping_timeout: float | None = _DEFAULTS.ping_timeout,
        allowed_origins: OriginPolicy = None,
        max_connections: int | None = None,
        shutdown_timeout: float = _DEFAULTS.shutdown_timeout,
        close_timeout: float = _DEFAULTS.close_timeout,
        coalesce_window: float = _DEFAULTS.coalesce_window,
        write_threads: int | None = None,
        compression: str | None = _DEFAULTS.compression,
        compression_threshold: int = _DEFAULTS.compression_threshold,
        compression_level: int = _DEFAULTS.compression_level,
        header_timeout: float | None = _DEFAULTS.header_timeout,
        keepalive_timeout: float | None = _DEFAULTS.keepalive_timeout,
        body_timeout: float | None = _DEFAULTS.body_timeout,
        broker: str | None = None,
        metrics: bool = True,
        debug: bool = False,
    ) -> None:
        if before_open is not None and not callable(before_open):
            raise TypeError(f"before_open must be a callable (req) -> value, not {before_open!r}")
        config = Config(
            max_message_size=max_message_size,
            max_body_size=max_body_size,
            send_queue_size=send_queue_size,
            send_queue_bytes=send_queue_bytes,
            max_fragments=max_fragments,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            allowed_origins=allowed_origins,
            max_connections=max_connections,
            shutdown_timeout=shutdown_timeout,
            close_timeout=close_timeout,
            coalesce_window=coalesce_window,
            write_threads=write_threads,
            compression=compression,
            compression_threshold=compression_threshold,
            compression_level=compression_level,
            header_timeout=header_timeout,
            keepalive_timeout=keepalive_timeout,
            body_timeout=body_timeout,
            broker=broker,
            metrics=metrics,
            debug=debug,
        )
        object.__setattr__(self, "_config", config)
        self.before_open = before_open
        self._http: Router[Handler] = Router()
        self._ws: Router[_WsRoute] = Router()
        self._mounts = Mounts()
        # (prefix, files) at each static prefix ("" for "/", as the files' paths are cut).
        self._statics: PrefixTable[tuple[str, StaticFiles]] = PrefixTable()
        self._runtime = Runtime(config)

    @property
    def config(self) -> Config:
        """The app's options (frozen: set them when building the App)."""
        return self._config  # type: ignore[no-any-return]

    @property
    def runtime(self) -> Runtime:
        """What runs while the app is served (the servers drive its lifecycle)."""
        return self._runtime

    def __getattr__(self, name: str) -> Any:
        # Config values read as attributes: app.max_message_size, app.ping_interval, ...
        if name in _CONFIG_FIELDS:
            return getattr(self.__dict__["_config"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CONFIG_FIELDS or name == "config":
            raise AttributeError(
                f"{name} is fixed when the App is built: pass it as App({name}=...)"
                if name != "config"
                else "the configuration is fixed when the App is built: pass App(option=...)"
            )
        object.__setattr__(self, name, value)

    # -- HTTP routes ----------------------------------------------------------------------

    @overload
    def route(
        self, path: str, methods: list[str] | tuple[str, ...]
    ) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def route(
        self, path: str, methods: list[str] | tuple[str, ...], handler: HandlerT
    ) -> HandlerT: ...

    def route(
        self, path: str, methods: list[str] | tuple[str, ...], handler: Handler | None = None
    ) -> Any:
        """Register `handler` for `path` and each of `methods`; a decorator without handler."""

        def register(fn: HandlerT) -> HandlerT:
            if not callable(fn):
                raise TypeError(f"a route handler must be callable, got {fn!r}")
            for method in methods:
                self._http.add(path, method.upper(), fn, signature_of=fn)
            return fn

        return register(handler) if handler is not None else register

    @overload
    def get(self, path: str) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def get(self, path: str, handler: HandlerT) -> HandlerT: ...

    def get(self, path: str, handler: Handler | None = None) -> Any:
        """Register `handler` for GET requests on `path` (`:name`, a last `*name`); as
        `@app.get(path)` a decorator returning the function unchanged."""
        return self.route(path, ("GET",), handler)  # type: ignore[type-var]

    @overload
    def post(self, path: str) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def post(self, path: str, handler: HandlerT) -> HandlerT: ...

    def post(self, path: str, handler: Handler | None = None) -> Any:
        """Register `handler` for POST requests on `path` (`:name`, a last `*name`); as
        `@app.post(path)` a decorator returning the function unchanged."""
        return self.route(path, ("POST",), handler)  # type: ignore[type-var]

    @overload
    def put(self, path: str) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def put(self, path: str, handler: HandlerT) -> HandlerT: ...

    def put(self, path: str, handler: Handler | None = None) -> Any:
        """Register `handler` for PUT requests on `path` (`:name`, a last `*name`); as
        `@app.put(path)` a decorator returning the function unchanged."""
        return self.route(path, ("PUT",), handler)  # type: ignore[type-var]

    @overload
    def patch(self, path: str) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def patch(self, path: str, handler: HandlerT) -> HandlerT: ...

    def patch(self, path: str, handler: Handler | None = None) -> Any:
        """Register `handler` for PATCH requests on `path` (`:name`, a last `*name`); as
        `@app.patch(path)` a decorator returning the function unchanged."""
        return self.route(path, ("PATCH",), handler)  # type: ignore[type-var]

    @overload
    def delete(self, path: str) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def delete(self, path: str, handler: HandlerT) -> HandlerT: ...

    def delete(self, path: str, handler: Handler | None = None) -> Any:
        """Register `handler` for DELETE requests on `path` (`:name`, a last `*name`); as
        `@app.delete(path)` a decorator returning the function unchanged."""
        return self.route(path, ("DELETE",), handler)  # type: ignore[type-var]

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
        """Register a WebSocket route. `:name` segments (and a last `*name`) are allowed; their
        values are in `ws.params` and the session is registered under its concrete path."""
        if handlers is not None and (on_open or on_message or on_close):
            raise TypeError(
                "pass WebSocketHandlers(...) or on_open=/on_message=/on_close=, not both"
            )
        if handlers is None:
            handlers = WebSocketHandlers(on_open, on_message, on_close)
        for cb in (*handlers, before_open):
            if cb is not None and not callable(cb):
                raise TypeError(f"WebSocket callbacks must be callable, got {cb!r}")
        self._ws.add(path, "WS", _WsRoute(handlers, before_open, tuple(subprotocols or ())))
        return handlers

    # -- other WSGI apps -----------------------------------------------------------------

    def mount(self, prefix: str, wsgi_app: WSGIApp) -> None:
        """Serve the requests under `prefix` that no route of ours takes with `wsgi_app` (any
        WSGI app: Flask, Django, ...). "/" takes everything; with several mounts the longest
        prefix wins, on segment boundaries. The app sees SCRIPT_NAME with the prefix and
        PATH_INFO with the rest (PEP 3333). See docs/flask.md."""
        self._mounts.add(prefix, wsgi_app)

    # -- static files ---------------------------------------------------------------------

    def static(
        self, prefix: str, directory: str | Path, *, index: str | None = "index.html"
    ) -> StaticFiles:
        """Serve the files under `directory` at `prefix` + their relative path (GET, HEAD;
        ETag, 304, Range; no path leaves the directory). The app's own routes win over it;
        several prefixes: the longest one matching on a segment boundary. See docs/http.md."""
        key = "" if check_prefix(prefix, "static prefix") == "/" else prefix
        files = StaticFiles(directory, index=index)
        if not self._statics.add(key, (key, files)):
            raise ValueError(f"static files are already served at {prefix!r}")
        return files

    # -- sessions, broadcast, tasks -------------------------------------------------------

    def _concrete(self, path: str) -> str:
        if self._ws.is_pattern(path):
            raise ValueError(
                f"{path!r} is a route pattern, not a path: broadcast to and count the sessions "
                "of a concrete path, such as ws.path in a callback (e.g. '/chat/lobby' for "
                "'/chat/:room')"
            )
        return path

    def broadcast(self, path: str, data: Any, exclude: Any = None) -> int:
        """Send `data` to every session on `path`; serialized once and framed once.

        Returns how many sessions in this process it was handed to. With a broker, the
        serialized payload is also published once for the other processes. Safe from any
        greenlet, and from an OS thread: there the message is serialized and framed in the
        calling thread, then handed to the server's hub, and the call waits (up to 10 s) for
        the count. `exclude` (a session or an iterable of them) applies to local sessions.
        """
        return self._runtime.broadcast(self._concrete(path), data, exclude)

    def connections(self, path: str, cluster: bool = False) -> int:
        """How many sessions are open on `path` in this process; with `cluster=True`, in every
        live process of the cluster (at most 5 s old; without a broker, this process's)."""
        return self._runtime.connections(self._concrete(path), cluster)

    def sessions(self, path: str) -> list[WebSocket]:
        """The open sessions on `path` in this process."""
        return self._runtime.sessions(self._concrete(path))

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
        return self._runtime.spawn(fn, args, kwargs, singleton)

    def stats(self) -> dict[str, Any]:
        """A snapshot of this process's metrics as a plain dict (no extra dependency): open
        sessions per route, closes per code, messages, bytes, broadcasts, latency histograms,
        HTTP requests, tasks, broker; see docs/observability.md. `{}` with metrics=False."""
        return self._runtime.stats()

    def metrics_route(self, path: str = "/metrics") -> None:
        """Serve the Prometheus exposition of the whole server's metrics at `path` (under
        gunicorn: every worker's, whichever answers). Needs the `metrics` extra
        (prometheus_client): without it this call raises at once, naming the extra."""
        try:
            prometheus = importlib.import_module("blaze_green.prometheus")
        except ImportError as exc:
            raise RuntimeError(
                "app.metrics_route() needs prometheus_client: pip install 'blaze-green[metrics]'"
            ) from exc
        if self._runtime.metrics is None:
            raise ValueError("app.metrics_route() needs metrics on: App(metrics=True)")
        runtime = self._runtime

        def metrics_endpoint(req: Request) -> Response:
            body = prometheus.exposition(runtime.server_stats())
            return Response(body, content_type=prometheus.CONTENT_TYPE)

        self.get(path, metrics_endpoint)

    def on_start(self, fn: Fn) -> Fn:
        """Call `fn()` when the server starts (in each worker); usable as a decorator."""
        self._runtime.on_start(fn)
        return fn

    # -- running --------------------------------------------------------------------------

    def listen(
        self,
        port: int = 8080,
        host: str = "127.0.0.1",
        *,
        access_log: bool = False,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Serve on the embedded, monkey-patched gevent WSGI server until SIGINT/SIGTERM.
        With `certfile`/`keyfile` (PEM) or an `ssl_context`: https:// and wss://."""
        from .server import serve

        serve(
            self,
            host=host,
            port=port,
            access_log_enabled=access_log,
            certfile=certfile,
            keyfile=keyfile,
            ssl_context=ssl_context,
        )

    # -- WSGI -----------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if handshake.is_upgrade_request(environ):
            return self._websocket(environ, start_response)
        started = time.perf_counter()
        req = Request(environ, self._config.max_body_size)
        method = req.method
        pattern: str | None = None
        mount: Mount | None = None
        try:
            handler, kwargs, allowed, pattern = self._http.resolve(req.path, method)
            if handler is None and method == "HEAD":
                handler, kwargs, allowed, pattern = self._http.resolve(req.path, "GET")
            if handler is None:
                # A plain request to one of our ws paths stays ours (a 400 that says so).
                # Then static files (not on a path we route for other methods: that is a
                # 405), then mounted apps, which get any method we do not route (so a Flask
                # GET beside our POST on one path keeps working; docs/flask.md).
                if self._ws.find(req.path):
                    raise self._no_route(req.path, allowed)
                static = self._statics.find(req.path) if self._statics and not allowed else None
                if static is not None:
                    return self._serve_static(environ, start_response, req, static, started)
                found = self._mounts.find(environ.get("PATH_INFO") or "/") if self._mounts else None
                if found is None:
                    raise self._no_route(req.path, allowed)
                mount = found
            else:
                self._check_body_size(environ)
                response = to_response(handler(req, **kwargs))
                status, headers, body = response.encode()
        except HTTPError as exc:
            try:
                status, headers, body = self._error_response(exc, environ)
            except Exception:  # e.g. a header made invalid after the HTTPError was built
                log.exception("%s %s failed", method, req.path)
                status, headers, body = Response(_INTERNAL_ERROR, 500).encode()
        except Exception:
            log.exception("%s %s failed", method, req.path)
            status, headers, body = Response(_INTERNAL_ERROR, 500).encode()
        finally:
            req.close()  # uploaded files: their temporary files go now
        metrics = self._runtime.metrics
        if mount is not None:
            # Outside the try above: the mounted app's errors are its own (see mount.py).
            observe = metrics.http_request if metrics is not None else None
            return mount.serve(environ, start_response, self._config.max_body_size, observe)
        start_response(status, headers)
        if metrics is not None:
            metrics.http_request(
                method, pattern or UNMATCHED, int(status[:3]), time.perf_counter() - started
            )
        return [] if method == "HEAD" else [body]

    def _serve_static(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        req: Request,
        static: tuple[str, StaticFiles],
        started: float,
    ) -> Iterable[bytes]:
        prefix, files = static
        metrics = self._runtime.metrics
        if metrics is None:
            return files.serve(environ, req.path[len(prefix) :], start_response)
        codes: list[int] = []

        def observing(status: str, headers: Any, *exc: Any) -> Any:
            codes.append(int(status[:3]))
            return start_response(status, headers, *exc)

        body = files.serve(environ, req.path[len(prefix) :], observing)
        elapsed = time.perf_counter() - started
        metrics.http_request(req.method, f"{prefix}/*", codes[-1] if codes else 500, elapsed)
        return body

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

    def _no_ws_route(self, path: str, path_info: str) -> str:
        mount = self._mounts.find(path_info) if self._mounts else None
        if mount is None:
            return f"no WebSocket route for {path}"
        return (
            f"no WebSocket route for {path}: the WSGI app mounted at {mount.prefix!r} serves "
            "HTTP only; register WebSocket endpoints with app.ws(path, ...)"
        )

    def _check_body_size(self, environ: dict[str, Any]) -> None:
        limit = self._config.max_body_size
        length = environ.get("CONTENT_LENGTH")
        if limit is not None and length and length.isdigit() and int(length) > limit:
            raise HTTPError(413, f"request body is {length} bytes; the limit is {limit}")

    def _error_response(
        self, exc: HTTPError, environ: dict[str, Any]
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        status, headers, body = exc.to_response().encode()
        if exc.status == 413:
            # Don't drain a body we refused: answer and close the connection instead.
            headers.append(("Connection", "close"))
            stream: Any = environ.get("wsgi.input")
            if hasattr(stream, "position") and hasattr(stream, "content_length"):
                stream.content_length = stream.position
        return status, headers, body

    def _websocket(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        runtime = self._runtime
        config = self._config
        req = Request(environ, config.max_body_size)
        reserved = False
        try:
            found = self._ws.find(req.path)
            if not found:
                raise HTTPError(404, self._no_ws_route(req.path, environ.get("PATH_INFO") or "/"))
            route_obj, params = found[0]
            route = route_obj.targets["WS"]
            upgrade = environ.get(handshake.UPGRADE_KEY)
            if upgrade is None:
                raise HTTPError(
                    400,
                    "this server cannot upgrade to WebSocket: run the app with `blaze-green run`, "
                    f"app.listen(), or gunicorn -k {WORKER_CLASS}",
                )
            key = handshake.validate(environ)
            origin = environ.get("HTTP_ORIGIN")
            if not handshake.origin_allowed(config.allowed_origins, origin, req):
                log.warning(
                    "refused WebSocket to %s from origin %r (allowed_origins)", req.path, origin
                )
                raise HTTPError(403, f"origin {origin} is not allowed")
            if not runtime.reserve():
                limit = config.max_connections
                log.warning(
                    "refused WebSocket to %s: max_connections (%s) reached", req.path, limit
                )
                raise HTTPError(503, f"too many WebSocket connections (max_connections={limit})")
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
            deflate = None
            if config.compression == "deflate":
                deflate = handshake.select_deflate(environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS"))
        except HTTPError as exc:
            if reserved:
                runtime.release()
            runtime.handshake_rejected(exc.status)
            status, headers, body = exc.to_response().encode()
            start_response(status, headers)
            return [body]
        except Exception:
            if reserved:
                runtime.release()
            runtime.handshake_rejected(500)
            log.exception("WebSocket handshake for %s failed", req.path)
            status, headers, body = Response(_INTERNAL_ERROR, 500).encode()
            start_response(status, headers)
            return [body]
        try:
            sock, initial = upgrade(handshake.response_headers(key, subprotocol, deflate))
        except BaseException:
            runtime.release()
            raise
        finally:
            # The callable holds the HTTP handler and its buffers; ws.environ outlives them.
            del environ[handshake.UPGRADE_KEY]
        ws = WebSocket(
            runtime,
            route.handlers,
            sock,
            environ,
            req.path,
            subprotocol,
            user_data,
            params,
            route_obj.pattern,
            deflate,
        )
        runtime.register(ws)
        ws.start(initial)  # the session's own greenlet: its reader
        return []
