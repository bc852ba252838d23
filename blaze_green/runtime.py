"""`Runtime`: what runs while an app is served: sessions, writes, tasks, the broker, the hub.

`App` holds routes and configuration; its `runtime` owns everything with a lifetime: the
session registry, the write scheduler, the background tasks, the broker, the hub the server
runs on, and the WebSocket connection slots (`max_connections`). The servers (embedded,
gunicorn worker, the test server) drive it through its public lifecycle:

    start()                  on the serving hub: bind the writes to its loop, connect the
                             broker, run on_start hooks, start held tasks
    close_sessions(code)     every open session starts its closing handshake (1001)
    drain(deadline)          wait until every session has finished or the deadline passes
    abort_sessions()         drop what is left; their readers finish them (on_close runs)
    stop()                   kill tasks, stop the broker, forget the hub
    shutdown(timeout)        all of the above in order, within `timeout` seconds

Sessions see it through `SessionHost` (config, writes, session_left, session_ended), the
broker through `BrokerHost` (local counts and remote delivery): neither sees the `App`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import gevent
from gevent import Greenlet, monkey

from .config import Config, writer_thread_count
from .metrics import Metrics, merge
from .metrics_files import SnapshotFiles
from .models import encode_message
from .tasks import Task, TaskGroup, resolve
from .ws.lifecycle import Ending
from .ws.outgoing import Compressors, OutgoingMessage
from .ws.registry import Registry
from .ws.writer_threads import WriterThreads
from .ws.writes import WriteScheduler

if TYPE_CHECKING:
    from .broker import Broker
    from .ws.session import WebSocket

__all__ = ["Runtime"]

log = logging.getLogger("blaze_green")

# Real OS-thread primitives, even when threading is patched (greenlet ids are not threads).
_os_thread_id = monkey.get_original("_thread", "get_ident")
_os_lock = monkey.get_original("_thread", "allocate_lock")

OS_THREAD_BROADCAST_TIMEOUT = 10.0
# At shutdown, sessions still open this long before the deadline are aborted, so that their
# on_close still runs within shutdown_timeout.
ABORT_MARGIN = 0.5
METRICS_SHARE_INTERVAL = 1.0  # how often a worker writes its metrics for the others
SUBSCRIBE_WAIT = 2.0  # a path's first session waits this long at most for its subscription


class Runtime:
    """The running state of one `App` (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics: Metrics | None = Metrics() if config.metrics else None
        self.registry = Registry()
        writers = writer_thread_count(config)
        threads = WriterThreads(writers) if writers > 1 else None
        self.writes = WriteScheduler(config.coalesce_window, self.metrics, threads)
        self.compressors = Compressors(config.compression_level, config.compression_threshold)
        self.tasks = TaskGroup(self.metrics)
        self.broker: Broker | None = None
        self._on_start: list[Callable[[], Any]] = []
        self._hub_thread: int | None = None  # the OS thread running the server's hub
        self._hub_loop: Any = None
        self._reserved = 0  # sessions open or mid-handshake, for max_connections
        self._live: set[WebSocket] = set()  # sessions that have not finished yet
        # Set by a server with several processes (the gunicorn worker) before start().
        self.metrics_files: SnapshotFiles | None = None
        self._metrics_writer: Greenlet | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._hub_loop is not None

    def on_start(self, fn: Callable[[], Any]) -> None:
        self._on_start.append(fn)

    def start(self) -> None:
        """The server runs (called on its hub, in every worker): start what runs with it."""
        self._hub_thread = _os_thread_id()
        self._hub_loop = gevent.get_hub().loop
        self.writes.bind(self._hub_loop)
        broker_url = self.config.broker or os.environ.get("BLAZE_BROKER_URL") or None
        if broker_url and self.broker is None:
            from .broker import make_broker

            self.broker = make_broker(broker_url, self)
            self.broker.start()
        for fn in self._on_start:
            fn()
        self.tasks.start()
        if self.metrics_files is not None and self.metrics is not None:
            self._metrics_writer = gevent.spawn(self._share_metrics)

    def close_sessions(self, code: int = 1001, reason: str = "server shutting down") -> int:
        """Start the closing handshake on every open session; returns how many."""
        sessions = self.registry.all_sessions()
        for ws in sessions:
            ws.close(code, reason)
        return len(sessions)

    @property
    def unfinished(self) -> int:
        """Sessions open, closing, or mid-handshake: not finished yet."""
        return max(self._reserved, len(self._live))

    def drain(self, deadline: float) -> bool:
        """Wait (polling the hub) until every session has finished or `deadline`
        (time.monotonic()) passes; True when none is left."""
        while self.unfinished:
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(0.02)
        return True

    def abort_sessions(self, grace: float = 1.0) -> int:
        """Drop every unfinished session's connection; their readers finish them and run
        on_close. A reader stuck in a callback gets GreenletExit after `grace` seconds.
        Returns how many were aborted."""
        left = list(self._live)
        for ws in left:
            ws.abort()
        if left and not self.drain(time.monotonic() + grace / 2):
            for ws in list(self._live):
                ws.kill()
            self.drain(time.monotonic() + grace / 2)
        return len(left)

    def stop(self) -> None:
        """Kill tasks, stop the broker, forget the hub (a later start() starts afresh)."""
        if self._metrics_writer is not None:
            self._metrics_writer.kill(block=True, timeout=1.0)
            self._metrics_writer = None
            self._write_metrics()  # the final counts stay for the others' totals
        self.tasks.kill()
        if self.broker is not None:
            broker, self.broker = self.broker, None
            broker.stop()
        self._hub_thread = None
        self._hub_loop = None

    def shutdown(
        self, timeout: float, code: int = 1001, reason: str = "server shutting down"
    ) -> None:
        """Close every session with `code` (1001; 1012 when the server restarts) and wait for
        them; past `timeout` (less a margin) drop the rest (their on_close still runs); then
        stop()."""
        deadline = time.monotonic() + timeout
        closing = self.close_sessions(code, reason)
        if closing:
            log.info("closing %d WebSocket session(s) with %d", closing, code)
        margin = min(ABORT_MARGIN, timeout / 4)
        if not self.drain(deadline - margin):
            n = self.abort_sessions(grace=margin)
            log.warning(
                "shutdown_timeout (%.1f s): %d session(s) had not finished closing; "
                "dropped their connections (on_close ran)",
                timeout,
                n,
            )
        self.stop()

    # -- sessions (SessionHost) -------------------------------------------------------------

    def reserve(self) -> bool:
        """Take a WebSocket connection slot; False when max_connections are taken."""
        limit = self.config.max_connections
        if limit is not None and self._reserved >= limit:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Give back a slot taken by a handshake that did not become a session."""
        self._reserved -= 1

    def register(self, ws: WebSocket) -> None:
        """A session opens (on its handshake's greenlet, before on_open). With a broker, the
        first session on a path subscribes this process to it and waits (at most
        SUBSCRIBE_WAIT seconds) for Redis to confirm, so that on_open runs only once every
        message published from then on reaches it."""
        self._live.add(ws)
        self.registry.register(ws)
        if self.metrics is not None:
            self.metrics.session_opened(ws.route)
        broker = self.broker
        if broker is not None:
            ready = broker.watch(ws.path)
            on_hub = gevent.getcurrent() is gevent.get_hub()
            if ready is not None and not on_hub and not ready.wait(SUBSCRIBE_WAIT):
                log.warning(
                    "broker: no confirmation of the subscription to %s within %.1f s; "
                    "the session opens anyway",
                    ws.path,
                    SUBSCRIBE_WAIT,
                )

    def _left(self, ws: WebSocket) -> None:
        self.registry.unregister(ws)
        if self.broker is not None and not self.registry.has_sessions(ws.path):
            self.broker.unwatch(ws.path)

    def session_left(self, ws: WebSocket) -> None:
        self._left(ws)

    def session_ended(self, ws: WebSocket) -> None:
        self._left(ws)
        self._live.discard(ws)
        self._reserved -= 1
        m = self.metrics
        if m is not None:
            code = ws.close_code or 1006
            m.session_closed(ws.route, code)
            ending = ws.ending
            if ending is Ending.OVERFLOW:
                m.slow_consumer_closes += 1
            elif ending is Ending.PING_TIMEOUT:
                m.ping_timeouts += 1
            elif ending is Ending.PROTOCOL_ERROR:
                m.protocol_errors[code] += 1

    def handshake_rejected(self, status: int) -> None:
        if self.metrics is not None:
            self.metrics.handshakes_rejected[status] += 1

    # -- delivery -----------------------------------------------------------------------------

    def broadcast(self, path: str, data: Any, exclude: Any = None) -> int:
        """Serialize once, frame once, deliver to this process's sessions on `path` and
        publish for the others (see App.broadcast)."""
        opcode, payload = encode_message(data)
        message = OutgoingMessage(opcode, payload, self.compressors)
        hub_thread = self._hub_thread
        if hub_thread is None or _os_thread_id() == hub_thread:
            return self._deliver(path, message, exclude)
        # An OS thread: hand the delivery to the server's hub and wait for the count.
        result: list[int] = []
        done = _os_lock()
        done.acquire()

        def deliver() -> None:
            try:
                result.append(self._deliver(path, message, exclude))
            finally:
                done.release()

        self._hub_loop.run_callback_threadsafe(deliver)
        if not done.acquire(timeout=OS_THREAD_BROADCAST_TIMEOUT):
            raise TimeoutError(
                f"the server's hub did not run the broadcast within {OS_THREAD_BROADCAST_TIMEOUT} s"
            )
        return result[0] if result else 0

    def _deliver(self, path: str, message: OutgoingMessage, exclude: Any) -> int:
        # The other processes first: the broker hands the message to its publisher (and, from
        # a greenlet, yields once so that the PUBLISH leaves now), so that they deliver while
        # this process does, instead of after its whole local burst.
        if self.broker is not None:
            self.broker.publish(path, message.opcode, message.payload)
        m = self.metrics
        if m is None:
            n = self.registry.deliver(path, message, exclude)
        else:
            n = self.registry.deliver(path, message, exclude, time.monotonic())
            m.broadcasts += 1
            m.deliveries += n
            m.messages_sent += n
            m.payload_bytes_sent += n * len(message.payload)
        self.writes.flush_if_due()
        return n

    # -- the broker's view (BrokerHost) ------------------------------------------------------

    def local_count(self, path: str) -> int:
        return self.registry.count(path)

    def local_counts(self) -> dict[str, int]:
        return self.registry.counts()

    def deliver_remote(self, path: str, opcode: int, payload: bytes | memoryview) -> int:
        """A message another process broadcast: frame it once, hand it to the local sessions."""
        n = self.registry.deliver(path, OutgoingMessage(opcode, bytes(payload), self.compressors))
        m = self.metrics
        if m is not None:
            m.deliveries += n
            m.messages_sent += n
            m.payload_bytes_sent += n * len(payload)
        if n:
            # A burst read from the broker without yielding is written in rounds, as local ones.
            self.writes.flush_if_due()
        return n

    # -- metrics ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """This process's metrics as a plain dict ({} with App(metrics=False))."""
        if self.metrics is None:
            return {}
        broker = self.broker
        return self.metrics.snapshot(
            tasks_running=self.tasks.running,
            broker=broker.metrics_snapshot() if broker is not None else None,
        )

    def server_stats(self) -> dict[str, Any]:
        """The whole server's metrics: this process's, plus the other workers' when they share
        a metrics directory (see blaze_green.metrics_files)."""
        own = self.stats()
        if not own:
            return {}
        files = self.metrics_files
        if files is None:
            return merge([own], [True])
        others, live = files.others()
        return merge([own, *others], [True, *live])

    def _write_metrics(self) -> None:
        if self.metrics_files is not None and self.metrics is not None:
            self.metrics_files.write(self.stats())

    def _share_metrics(self) -> None:
        while True:
            self._write_metrics()
            gevent.sleep(METRICS_SHARE_INTERVAL)

    # -- counts and tasks ----------------------------------------------------------------------

    def connections(self, path: str, cluster: bool = False) -> int:
        if cluster and self.broker is not None:
            return self.broker.cluster_count(path)
        return self.registry.count(path)

    def sessions(self, path: str) -> list[WebSocket]:
        return self.registry.sessions(path)

    def spawn(
        self,
        fn: Callable[..., Any] | Task,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        singleton: str | None = None,
    ) -> Greenlet:
        if singleton is None:
            return self.tasks.spawn(fn, *args, **(kwargs or {}))
        call, call_args, call_kwargs = resolve(fn, tuple(args), kwargs or {})
        return self.tasks.spawn(self._run_singleton, singleton, call, call_args, call_kwargs)

    def _run_singleton(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        broker = self.broker
        if broker is None:
            return fn(*args, **kwargs)
        return broker.run_singleton(name, fn, args, kwargs)
