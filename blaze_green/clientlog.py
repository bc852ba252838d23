"""Logging a misbehaving client without letting it flood the log.

A client that sends malformed requests (or trickles bytes, or stalls a body) is answered and
disconnected; the first such event from an address is logged at WARNING (no traceback), and
further ones from the same address within `WINDOW` seconds at DEBUG only. The table of
addresses is bounded: it is cleared when it holds `MAX_ADDRESSES`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["client_error"]

log = logging.getLogger("blaze_green.http")

WINDOW = 60.0
MAX_ADDRESSES = 4096

_last: dict[Any, float] = {}


def client_error(address: Any, message: str, *args: Any, level: int = logging.WARNING) -> None:
    """Log `message % args` about the client at `address` (a (host, port) tuple or a string)."""
    host = address[0] if isinstance(address, tuple) and address else address
    now = time.monotonic()
    seen = _last.get(host)
    if seen is not None and now - seen < WINDOW:
        level = logging.DEBUG
    else:
        if len(_last) >= MAX_ADDRESSES:
            _last.clear()
        _last[host] = now
    if log.isEnabledFor(level):
        log.log(level, "client %s: " + message, host, *args)
