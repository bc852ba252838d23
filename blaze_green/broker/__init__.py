"""Brokers carry broadcasts between processes (gunicorn workers, hosts).

A broker is created when the server starts (so gunicorn workers connect after the fork) from
`App(broker=URL)` or `BLAZE_BROKER_URL`. The in-process registry stays the default: with no
broker, nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gevent.event import Event

__all__ = ["Broker", "BrokerHost", "make_broker"]


class BrokerHost(Protocol):
    """What a broker needs from the process it serves (blaze_green.runtime.Runtime)."""

    def local_count(self, path: str) -> int:
        """Open sessions on `path` in this process."""

    def local_counts(self) -> dict[str, int]:
        """Open sessions per path in this process (paths without sessions left out)."""

    def deliver_remote(self, path: str, opcode: int, payload: bytes | memoryview) -> int:
        """Deliver a message another process broadcast to this process's sessions on `path`."""


class Broker(Protocol):
    """What the runtime needs from a broker. Every method is called on the server's hub
    thread."""

    node_id: str

    def start(self) -> None:
        """Connect and subscribe in the background; never blocks and never raises for an
        unreachable broker (it logs once per outage and retries with backoff)."""

    def stop(self) -> None:
        """Unsubscribe, release singleton locks, remove this process's counts."""

    def publish(self, path: str, opcode: int, payload: bytes) -> None:
        """Queue one already-serialized message for the other processes; never blocks."""

    def watch(self, path: str) -> Event | None:
        """A session registers on `path`: subscribe to its channel if it is the first. An
        Event to wait on (bounded) before the session's on_open runs, or None."""

    def unwatch(self, path: str) -> None:
        """The last session on `path` left this process: unsubscribe."""

    def metrics_snapshot(self) -> dict[str, Any]:
        """published, received, ignored, dropped, reconnects, subscriptions, connected,
        seconds_since_contact, backlog_bytes (bytes waiting to reach the broker)."""

    def cluster_count(self, path: str) -> int:
        """Sessions on `path` in every live process (counts at most a few seconds old)."""

    def run_singleton(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run fn(*args, **kwargs) while holding the cluster-wide lock `name`; blocks (in its
        own greenlet) until this process holds the lock; gives the task up if the lock is lost."""


def make_broker(url: str, host: BrokerHost) -> Broker:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "redis+cluster":
        from .cluster import ClusterBroker

        return ClusterBroker(url, host)
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        return RedisBroker(url, host)
    raise ValueError(
        f"unsupported broker URL {url!r}: use redis://host:port/db or "
        "redis+cluster://host:port,host:port"
    )
