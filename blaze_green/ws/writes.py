"""`WriteScheduler`: when the queued frames of every session of one runtime are written.

Sessions with queued frames are written by one hub loop callback once the sender yields, so a
burst (200 broadcasts in a row) leaves in one send per socket. A burst that keeps the hub busy
for longer than the window is written in rounds from the sending greenlet, each round one send
per socket for everything queued since the last, so early messages are not held until the
burst ends.

The window is `budget` (App's `coalesce_window`, 2 ms) or 1/`ROUND_SHARE` of the last round's
duration, whichever is longer. A message waits about one window plus one round, and a round
costs one send per socket whatever it carries, so with a fixed 2 ms window 5,000 subscribers
spent 20 parts writing for each part producing; tying the window to the round caps that share
while adding only a fraction of a round to the wait. (Measured with `python -m bench
--scenarios fanout`; a 20 ms fixed window doubles throughput but makes p99 latency worse than
websockets'.)

A round over at least `SHARED_ROUND_MIN` sessions is shared with `WriterThreads` when the app
has `write_threads` > 1: the hub takes every session's bytes, the writer threads (the hub among
them) write them, and the hub settles each session with its result (see writer_threads.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..metrics import Metrics
    from .writer_threads import WriteResult, WriterThreads

__all__ = ["WriteScheduler", "Writable"]


class Writable(Protocol):
    def flush_writes(self) -> None:
        """Write what is queued with non-blocking sends (the rest waits for writability)."""

    def take_writes(self, fds: list[int], datas: list[bytes]) -> bool:
        """Append the descriptor and bytes to write now for a shared round (False: none)."""

    def written(self, data: bytes, result: WriteResult) -> None:
        """Settle the shared round's write of `data`: what os.write returned or raised."""


class WriteScheduler:
    ROUND_SHARE = 8
    # Below this many sessions a round is written by the hub alone, where waking a thread
    # would cost about as much as the writes it could take (~12 us each). 256 is a round
    # number above that break-even, not a measured optimum.
    SHARED_ROUND_MIN = 256

    __slots__ = (
        "_dirty",
        "_since",
        "_scheduled",
        "_window",
        "_loop",
        "budget",
        "metrics",
        "threads",
    )

    def __init__(
        self,
        budget: float = 0.002,
        metrics: Metrics | None = None,
        threads: WriterThreads | None = None,
    ) -> None:
        self.threads = threads  # None: every round is written by the hub alone
        self._dirty: list[Writable] = []
        self._since = 0.0
        self._scheduled = False
        self._window = budget
        self._loop: Any = None
        self.budget = budget
        self.metrics = metrics  # write-round durations go there

    def bind(self, loop: Any) -> None:
        """Run the write callbacks on `loop` (the serving hub's): called when the server starts."""
        self._loop = loop
        self._scheduled = False

    @property
    def window(self) -> float:
        """How long queued frames may wait now before a burst is written from the sender."""
        return self._window

    def schedule(self, session: Writable) -> None:
        """`session` has frames queued: write it in the next round."""
        if not self._dirty:
            self._since = time.monotonic()
        self._dirty.append(session)
        if not self._scheduled:
            self._scheduled = True
            self._loop.run_callback(self._run)

    def _run(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write every dirty session's pending frames now (non-blocking sends)."""
        dirty, self._dirty = self._dirty, []
        start = time.monotonic()
        if self.threads is not None and len(dirty) >= self.SHARED_ROUND_MIN:
            self._shared_round(dirty, self.threads)
            if self.metrics is not None:
                self.metrics.shared_write_rounds += 1
        else:
            for session in dirty:
                session.flush_writes()
        elapsed = time.monotonic() - start
        self._window = max(self.budget, elapsed / self.ROUND_SHARE)
        if self.metrics is not None:
            self.metrics.write_rounds.observe(elapsed)

    def flush_if_due(self) -> None:
        """Write now if frames have waited a whole window (a burst that does not yield)."""
        if self._dirty and time.monotonic() - self._since >= self._window:
            self.flush()

    @staticmethod
    def _shared_round(dirty: list[Writable], threads: WriterThreads) -> None:
        fds: list[int] = []
        datas: list[bytes] = []
        takers = [session for session in dirty if session.take_writes(fds, datas)]
        results = threads.write(fds, datas)
        for session, data, result in zip(takers, datas, results, strict=True):
            session.written(data, result)
