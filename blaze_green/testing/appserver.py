"""`AppServer`: an `App` on the embedded server in a daemon OS thread with its own gevent hub.

Handlers, `on_open`/`on_message`/`on_close` and background tasks all run on that thread's hub,
cooperatively with each other, while the test runs in its own thread. The test process is not
monkey-patched for it (and need not be): a blocking call in a handler (`time.sleep`, an
unpatched socket) blocks the test server only, never the test. `app.broadcast(...)` called from
the test thread is handed to that hub (see App.broadcast).
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import App

__all__ = ["AppServer"]

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
        """Start serving on the server's thread; returns once it accepts connections."""
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

        hub = gevent.get_hub()
        try:
            self._loop = hub.loop
            self._server = Server(self.app, self.host, self._bind_port, on_started=self._on_started)
            self._server.run(install_signals=False)
        except BaseException as exc:  # reported to start() or stop()
            self._error = exc
            if self._server is not None:  # it may have started listening before failing
                with contextlib.suppress(Exception):
                    self._server.wsgi.stop(timeout=0.5)
            if self.app.runtime.running:  # it may have started before failing
                with contextlib.suppress(Exception):
                    self.app.runtime.stop()
        finally:
            self._signal_ready()
            with contextlib.suppress(Exception):
                hub.destroy(destroy_loop=True)
            self._thread_done = True
            self._done.release()

    def _on_started(self, server: Any) -> None:
        self.port = server.address[1]
        self._signal_ready()

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
        if not finished:
            raise TimeoutError(f"the app server did not stop within {timeout}s")
        if self._error is not None and self.port is not None:
            raise RuntimeError(f"the app server failed: {self._error!r}") from self._error

    @property
    def running(self) -> bool:
        """True from `start()` until the server thread has ended."""
        return self._done is not None and not self._thread_done

    @property
    def url(self) -> str:
        """`http://host:port` of the running server."""
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        """`ws://host:port` + `path`."""
        return f"ws://{self.host}:{self.port}{path}"

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
