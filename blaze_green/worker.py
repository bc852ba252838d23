"""gunicorn worker: `gunicorn -k blaze_green.worker.GeventWebSocketWorker module:app`.

Built on gunicorn's own gevent pywsgi worker, so its access log and environ keys
(`gunicorn.sock`, `RAW_URI`) stay, with our upgrade handler on top. Unlike the stock worker,
which waits out `--graceful-timeout` with WebSockets open and then kills them without a close
frame, this one closes every session with 1001 as soon as it is told to stop.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import gevent
from gunicorn.http.wsgi import base_environ
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import VERSION, GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

from .app import App
from .idlepool import ReclaimingPool
from .metrics_files import SnapshotFiles, default_directory
from .server import UpgradeHandler, graceful_shutdown
from .tls_server import TLSHandshakeMixin

__all__ = ["GeventWebSocketWorker", "GunicornHandler", "GunicornWSGIServer"]

log = logging.getLogger("blaze_green")


class GunicornHandler(UpgradeHandler, PyWSGIHandler):  # type: ignore[misc]
    """Our upgrade handler with gunicorn's access log and environ."""

    # gevent-websocket's handler logs requests to its own logger; gunicorn's goes to --access-log.
    log_request = PyWSGIHandler.log_request
    get_environ = PyWSGIHandler.get_environ


class GunicornWSGIServer(TLSHandshakeMixin, PyWSGIServer):  # type: ignore[misc]
    """gunicorn's pywsgi server; with --certfile, failed handshakes are logged as client
    errors (and plain HTTP answered 400) instead of as hub tracebacks."""


class GeventWebSocketWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    wsgi_handler = GunicornHandler
    server_class = GunicornWSGIServer

    def _blaze_app(self) -> App | None:
        app = self.wsgi
        return app if isinstance(app, App) else None

    def run(self) -> None:
        app = self._blaze_app()
        ssl_args = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        servers = []
        for s in self.sockets:
            s.setblocking(1)
            environ = base_environ(self.cfg)
            environ.update({"wsgi.multithread": True, "SERVER_SOFTWARE": VERSION})
            server = self.server_class(
                s,
                application=self.wsgi,
                # full of idle connections, it reclaims the oldest (see idlepool.py)
                spawn=ReclaimingPool(self.worker_connections),
                log=self.log,
                handler_class=self.wsgi_handler,
                environ=environ,
                **ssl_args,
            )
            if app is not None:
                server.handshake_timeout = app.config.header_timeout
            server.start()
            servers.append(server)
        self._attach_logging()
        if app is not None:
            if app.runtime.metrics is not None:
                # The workers share their metrics, so /metrics shows the whole server.
                app.runtime.metrics_files = SnapshotFiles(default_directory(self.ppid))
            app.runtime.start()
            if self.cfg.workers > 1 and app.runtime.broker is None:
                log.warning(
                    "%d workers and no broker: app.broadcast reaches only the sessions of the "
                    "worker that calls it. Set App(broker='redis://host:6379/0') or "
                    "BLAZE_BROKER_URL to reach every worker.",
                    self.cfg.workers,
                )
        log.info("blaze_green worker %d serving", os.getpid())
        last_notify = 0.0
        while self.alive:
            # Poll often so a stop request is acted on at once; notify the arbiter each second.
            now = time.monotonic()
            if now - last_notify >= 1.0:
                self.notify()
                last_notify = now
            gevent.sleep(0.1)
        if app is not None:
            timeout = min(app.config.shutdown_timeout, float(self.cfg.graceful_timeout))
            graceful_shutdown(app, servers, timeout)
        else:
            for server in servers:
                server.close()
                server.stop(timeout=float(self.cfg.graceful_timeout))

    def _attach_logging(self) -> None:
        # blaze_green's logger writes where gunicorn's error log does (--error-logfile).
        pkg = logging.getLogger("blaze_green")
        error_log = getattr(self.log, "error_log", None)
        if not pkg.handlers and error_log is not None and error_log.handlers:
            for handler in error_log.handlers:
                pkg.addHandler(handler)
            pkg.setLevel(error_log.level or logging.INFO)
            pkg.propagate = False

    def handle_quit(self, sig: int, frame: Any) -> None:
        # SIGQUIT/SIGINT: gunicorn's default exits at once; shut down gracefully instead.
        self.alive = False
