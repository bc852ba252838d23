"""`WriterThreads`: OS threads that write part of a large write round while the hub writes the rest.

A write round is one `os.write` per session with queued frames, and on a big fan-out nearly all
of its time is the kernel's (a 100-byte write to one of 15,000 loopback TCP sockets costs
~12 us here, most of it the TCP send path: `python -m bench.write_floor`). `os.write` releases
the GIL, so a second OS thread writing other sessions' sockets at the same time runs that
kernel work on another core: the round ends sooner, and so does the wait of the last
subscriber in it.

Only the writes move: the hub first takes each session's bytes (on the hub, as always), the
threads then write them (they touch nothing but a descriptor and a bytes object, and the hub
is busy in the round meanwhile, so no session changes under them), and the hub then settles
each session with what its write returned. The threads take the next write from one shared
counter (`next()` on it is atomic under the GIL), so a thread that wakes late or is slowed by
other work simply writes less.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from typing import Any

from gevent import monkey

log = logging.getLogger("blaze_green")

__all__ = ["WriterThreads", "WriteResult"]

# Real OS threads and locks even when gevent has patched threading: a greenlet "thread" would
# run on the hub and write nothing in parallel.
_start_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")

WriteResult = int | OSError  # what os.write returned, or raised
_Job = tuple[list[int], list[bytes], list[WriteResult], Iterator[int], int]


def _write_share(
    fds: list[int], datas: list[bytes], results: list[WriteResult], take: Iterator[int], n: int
) -> None:
    write = os.write
    for i in take:
        if i >= n:
            return
        try:
            results[i] = write(fds[i], datas[i])
        except OSError as exc:  # BlockingIOError included: the session sees it and waits
            results[i] = exc
        except Exception:
            # Never expected. The result stays 0, "nothing taken": the session keeps its
            # bytes and writes them when its socket is writable (nothing lost or sent twice).
            log.exception("a write of a shared round failed")


class _Helper:
    """One OS thread, parked on a lock between rounds."""

    __slots__ = ("_go", "_done", "_job", "_error")

    def __init__(self) -> None:
        self._go: Any = _allocate_lock()
        self._go.acquire()
        self._done: Any = _allocate_lock()
        self._done.acquire()
        self._job: _Job | None = None
        self._error: BaseException | None = None
        _start_thread(self._run, ())

    def start(self, job: _Job) -> None:
        self._job = job
        self._go.release()

    def wait(self) -> BaseException | None:
        """Until this round's share is written; returns an unexpected error of the thread."""
        self._done.acquire()
        self._job = None
        error, self._error = self._error, None
        return error

    def _run(self) -> None:
        while True:  # the thread outlives any error: a dead helper would hang the next round
            self._go.acquire()
            job = self._job
            try:
                if job is not None:
                    _write_share(*job)
            except BaseException as exc:
                self._error = exc
            finally:
                self._done.release()


class WriterThreads:
    """`count` writers in all: the calling (hub) thread and `count - 1` helper OS threads,
    started on first use and again in a forked child (threads do not survive a fork)."""

    __slots__ = ("count", "_helpers", "_pid")

    def __init__(self, count: int) -> None:
        if count < 2:
            raise ValueError(f"WriterThreads needs at least 2 writers, got {count}")
        self.count = count
        self._helpers: list[_Helper] = []
        self._pid = 0

    def write(self, fds: list[int], datas: list[bytes]) -> list[WriteResult]:
        """Write each `datas[i]` to `fds[i]` once (non-blocking descriptors), spread over the
        writers; returns what each write returned or raised, in the same order."""
        n = len(fds)
        results: list[WriteResult] = [0] * n
        job: _Job = (fds, datas, results, itertools.count(), n)
        helpers = self._ready()
        for helper in helpers:
            helper.start(job)
        try:
            _write_share(*job)
        finally:
            for helper in helpers:
                error = helper.wait()
                if error is not None:  # never expected; its unmade writes stay 0, as above
                    log.error("a writer thread failed", exc_info=error)
        return results

    def _ready(self) -> list[_Helper]:
        pid = os.getpid()
        if self._pid != pid:
            self._helpers = [_Helper() for _ in range(self.count - 1)]
            self._pid = pid
        return self._helpers
