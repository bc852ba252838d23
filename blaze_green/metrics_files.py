"""Metrics across the processes of one server: each writes its snapshot to a shared directory.

Under gunicorn every worker writes `{directory}/{pid}.json` once a second (and when it stops);
the worker that answers a scrape adds its own live snapshot to the others' files
(`metrics.merge`), so `/metrics` shows the whole server whichever worker answers, at most about
a second old for the others. A file whose process is gone is a dead worker: its counters stay
in the totals and its gauges are left out, which is how prometheus_client's multiprocess mode
treats counters and `livesum` gauges of a process marked dead.

Why not prometheus_client's multiprocess mode itself: it makes every increment a write to a
memory-mapped file under a lock, on the paths this framework keeps cheapest (each message, each
socket write); here those stay integer additions and the files are written once a second.

The directory: `BLAZE_METRICS_DIR` if set, else (under gunicorn) one per master process in the
system's temporary directory, `blaze_green-metrics-{master pid}`; a single process needs none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["SnapshotFiles", "default_directory"]

log = logging.getLogger("blaze_green")

_PREFIX = "blaze_green-metrics-"


def default_directory(master_pid: int) -> Path:
    """The directory the workers of the gunicorn master `master_pid` share. The default ones
    of masters that are gone are removed on the way (nothing else would remove them)."""
    configured = os.environ.get("BLAZE_METRICS_DIR")
    if configured:
        return Path(configured)
    base = Path(tempfile.gettempdir())
    for stale in base.glob(f"{_PREFIX}*"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(stale.name[len(_PREFIX) :])
            if pid != master_pid and not _alive(pid):
                shutil.rmtree(stale, ignore_errors=True)
    return base / f"{_PREFIX}{master_pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


class SnapshotFiles:
    """This process's snapshot file in `directory`, and reading everyone's."""

    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = Path(directory)
        self.pid = os.getpid() if pid is None else pid
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.pid}.json"

    def write(self, snapshot: dict[str, Any]) -> None:
        """Replace this process's file atomically (a reader never sees half of it)."""
        tmp = self.directory / f".{self.pid}.json.tmp"
        try:
            tmp.write_text(json.dumps(snapshot), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("metrics: cannot write %s: %s", self.path, exc)

    def others(self) -> tuple[list[dict[str, Any]], list[bool]]:
        """The other processes' snapshots and, for each, whether that process is alive."""
        snapshots: list[dict[str, Any]] = []
        live: list[bool] = []
        for entry in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(ValueError):
                pid = int(entry.stem)
                if pid == self.pid:
                    continue
                try:
                    snapshots.append(json.loads(entry.read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    continue  # removed or being replaced: next scrape
                live.append(_alive(pid))
        return snapshots, live
