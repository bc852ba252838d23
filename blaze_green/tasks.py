"""Background tasks: `@task`, `delay`, and the per-app group that starts them with the server.

Tasks spawned before the server runs are held unstarted and start when it starts (in each
gunicorn worker, never in the master, since the master never runs the server).
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec

import gevent
from gevent import Greenlet, GreenletExit

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = ["Task", "task", "delay", "resolve", "TaskGroup"]

log = logging.getLogger("blaze_green")

P = ParamSpec("P")


class Task:
    """An unstarted call `fn(*args, **kwargs)`, built by a `@task` function; pass it to
    `app.spawn`."""

    __slots__ = ("fn", "args", "kwargs")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    @property
    def name(self) -> str:
        """The function's qualified name, as logs and errors show it."""
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


def task(fn: Callable[P, Any]) -> Callable[P, Task]:
    """`@task def monitor_loop(app): ...` then `app.spawn(monitor_loop(app))`, as in Blaze."""

    @functools.wraps(fn)
    def build(*args: P.args, **kwargs: P.kwargs) -> Task:
        return Task(fn, args, kwargs)

    build.__blaze_task__ = fn  # type: ignore[attr-defined]
    return build


def delay(duration: float | datetime.timedelta) -> None:
    """Sleep without blocking other greenlets (gevent.sleep); takes seconds or a timedelta."""
    if isinstance(duration, datetime.timedelta):
        duration = duration.total_seconds()
    if duration < 0:
        raise ValueError(f"delay() needs a duration >= 0, got {duration}")
    gevent.sleep(duration)


def _run_logged(
    name: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    metrics: Metrics | None = None,
) -> Any:
    try:
        return fn(*args, **kwargs)
    except GreenletExit:
        raise
    except Exception:
        log.exception("background task %s raised", name)
        if metrics is not None:
            metrics.task_failures += 1
        return None


def resolve(
    fn: Callable[..., Any] | Task, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """The call a spawn means: a `@task` call unwrapped, anything else checked."""
    if isinstance(fn, Task):
        if args or kwargs:
            raise TypeError("spawn(task) takes no extra arguments: pass them to the @task call")
        return fn.fn, fn.args, fn.kwargs
    if not callable(fn):
        raise TypeError(f"spawn() needs a callable or a @task call, got {fn!r}")
    if hasattr(fn, "__blaze_task__"):
        raise TypeError(
            f"{fn.__name__} is a @task: call it to build the task, as in "
            f"app.spawn({fn.__name__}(app))"
        )
    return fn, args, kwargs


class TaskGroup:
    """The app's tasks: held until `start()`, then running; all killed by `kill()`."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._pending: list[Greenlet] = []
        self._held: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._running: set[Greenlet] = set()
        self.started = False
        self._served_before = False

    def spawn(self, fn: Callable[..., Any] | Task, *args: Any, **kwargs: Any) -> Greenlet:
        fn, args, kwargs = resolve(fn, args, kwargs)
        name = getattr(fn, "__qualname__", repr(fn))
        g = self._make(name, fn, args, kwargs)
        if self.started:
            g.start()
        else:
            self._pending.append(g)
            self._held.append((name, fn, args, kwargs))
        return g

    def _make(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Greenlet:
        g = Greenlet(_run_logged, name, fn, args, kwargs, self._metrics)
        g.name = name
        g.link(self._running.discard)
        self._running.add(g)
        return g

    @property
    def running(self) -> int:
        """Tasks started and not finished."""
        return sum(1 for g in self._running if g)

    def start(self) -> None:
        """Start the held tasks on the calling thread's hub (the server's)."""
        self.started = True
        hub = gevent.get_hub()
        if self._served_before:
            # Served again in this process (a test server per test): the held greenlets ran
            # and were killed; start the same tasks afresh.
            pending = [self._make(*spec) for spec in self._held]
        else:
            pending, self._pending = self._pending, []
        self._served_before = True
        for g in pending:
            if not g.dead:
                if g.parent is not hub:
                    # Built on another thread's hub (app.spawn at import, server on a thread
                    # of its own): an unstarted greenlet can move to this one.
                    g.parent = hub
                g.start()
        if pending:
            log.info("started %d background task(s)", len(pending))

    def kill(self, timeout: float = 1.0) -> None:
        greenlets = [g for g in self._running if not g.dead]
        self._pending = []
        self.started = False
        if greenlets:
            gevent.killall(greenlets, timeout=timeout)
