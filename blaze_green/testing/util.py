"""Small helpers for tests: a free port, polling with a deadline."""

from __future__ import annotations

import socket
import time
from typing import Any, cast

__all__ = ["free_port", "wait_until"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (prefer --port 0 where the server supports it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return cast(int, s.getsockname()[1])


def wait_until(
    predicate: Any, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll `predicate()` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)
