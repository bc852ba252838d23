"""`ReclaimingPool`: the gunicorn worker's pool of connection handlers, which a flood of idle
connections cannot fill.

gevent's StreamServer with a Pool stops accepting while the pool is full and starts again when
a handler greenlet ends, so `--worker-connections` silent connections would leave everyone else
waiting in the listen backlog until `header_timeout` reaps them. An idle connection (one
waiting for the first byte of a request: a new connection, or keep-alive between requests)
holds nothing worth keeping, so, like nginx's reusable connections
(`ngx_drain_connections`), once the pool is full the connection idle the longest is closed
to make room: the next connection is served at once. A connection that has sent part of a
request, or is being answered, is never reclaimed (its deadline is `header_timeout`).
A WebSocket session leaves the pool at the upgrade (it runs on a greenlet of its own), so
sessions are bounded by `max_connections`, never by this pool.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

from gevent.pool import Pool

__all__ = ["IdleConnections", "ReclaimingPool"]

log = logging.getLogger("blaze_green.server")


class IdleConnections:
    """The connections waiting for a request, oldest first (a dict keeps insertion order)."""

    __slots__ = ("_waiting", "reclaimed", "wanted")

    def __init__(self) -> None:
        self._waiting: dict[object, Any] = {}
        self.reclaimed = 0  # how many were closed to make room
        # The pool was full with nothing idle yet (handlers spawned but not yet waiting): the
        # next connection to start waiting is reclaimed, else accepting would stall.
        self.wanted = False

    def __len__(self) -> int:
        return len(self._waiting)

    def waiting(self, key: object, sock: Any) -> None:
        """`key`'s connection now waits for the first byte of a request."""
        self._waiting[key] = sock
        if self.wanted:
            self.wanted = False
            self.reclaim()

    def active(self, key: object) -> None:
        """`key`'s connection got a byte (or ended): not idle any more."""
        self._waiting.pop(key, None)

    def reclaim(self) -> bool:
        """Close the connection idle the longest; False when none is idle. Its handler wakes
        with EOF and returns, which frees its slot."""
        if not self._waiting:
            return False
        key = next(iter(self._waiting))
        sock = self._waiting.pop(key)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        self.reclaimed += 1
        return True


class ReclaimingPool(Pool):  # type: ignore[misc]
    """A gevent Pool that, when full, closes its longest-idle connection to make room."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.idle = IdleConnections()

    def full(self) -> bool:
        # gevent's server asks before each accept: full means "stop accepting until a slot
        # frees". Reclaiming one idle connection frees one soon (its greenlet ends).
        if self.free_count() > 0:
            self.idle.wanted = False  # a slot freed by itself meanwhile
            return False
        if self.idle.reclaim():
            log.debug("worker pool full: closed the longest-idle connection to make room")
        else:
            self.idle.wanted = True
        return True
