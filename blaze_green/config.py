"""`Config`: the options of an `App`, validated once when the app is built.

Every option is checked here, by name, so a wrong value fails at `App(...)` with a message that
names it, not later in every session: a value of the wrong type is a `TypeError`, one out of
range a `ValueError`. A `Config` is frozen: options are fixed for the app's lifetime.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias

__all__ = ["Config", "OriginPolicy", "MiB", "writer_thread_count"]

MiB: Final = 1 << 20

# None: same origin; "*": any; an iterable of origins; or a callable (origin, request) -> bool.
OriginPolicy: TypeAlias = str | Iterable[str] | Callable[[str, Any], bool] | None

BROKER_SCHEMES: Final = ("redis", "rediss", "unix")


@dataclasses.dataclass(frozen=True)
class Config:
    """The validated options of one `App` (see the README's configuration table)."""

    max_message_size: int | None = MiB
    max_body_size: int | None = 10 * MiB
    send_queue_size: int = 1024
    send_queue_bytes: int = 16 * MiB
    max_fragments: int | None = 1024
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    allowed_origins: OriginPolicy = None
    max_connections: int | None = None
    shutdown_timeout: float = 10.0
    close_timeout: float = 5.0
    coalesce_window: float = 0.002
    write_threads: int | None = None  # None: 2 if the process may run on 2 or more cores, else 1
    compression: str | None = "deflate"
    compression_threshold: int = 128
    compression_level: int = 6
    header_timeout: float | None = 10.0
    keepalive_timeout: float | None = 20.0
    body_timeout: float | None = 30.0
    broker: str | None = None
    metrics: bool = True
    debug: bool = False

    def __post_init__(self) -> None:
        _count("max_message_size", self.max_message_size, minimum=0, optional=True)
        _count("max_body_size", self.max_body_size, minimum=0, optional=True)
        _count("send_queue_size", self.send_queue_size, minimum=1)
        _count("send_queue_bytes", self.send_queue_bytes, minimum=1)
        _count("max_fragments", self.max_fragments, minimum=1, optional=True)
        _count("max_connections", self.max_connections, minimum=0, optional=True)
        _seconds("ping_interval", self.ping_interval, positive=True, optional=True)
        _seconds("ping_timeout", self.ping_timeout, positive=True, optional=True)
        _seconds("shutdown_timeout", self.shutdown_timeout)
        _seconds("close_timeout", self.close_timeout)
        _seconds("coalesce_window", self.coalesce_window)
        _count("write_threads", self.write_threads, minimum=1, optional=True)
        _seconds("header_timeout", self.header_timeout, positive=True, optional=True)
        _seconds("keepalive_timeout", self.keepalive_timeout, positive=True, optional=True)
        _seconds("body_timeout", self.body_timeout, positive=True, optional=True)
        _origins(self.allowed_origins)
        if self.compression not in ("deflate", None):
            raise ValueError(
                f"compression must be 'deflate' (permessage-deflate) or None, "
                f"not {self.compression!r}"
            )
        _count("compression_threshold", self.compression_threshold, minimum=0)
        _count("compression_level", self.compression_level, minimum=1)
        if self.compression_level > 9:
            raise ValueError(f"compression_level must be 1-9, got {self.compression_level}")
        if self.broker is not None:
            _broker_url(self.broker)
        for name in ("metrics", "debug"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, not {getattr(self, name)!r}")


def _type_name(value: object) -> str:
    return type(value).__name__


def _count(name: str, value: object, *, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        what = "an int or None" if optional else "an int"
        raise TypeError(f"{name} must be {what} (a number of bytes or items), not {value!r}")
    if value < minimum:
        tail = " or None for no limit" if optional else ""
        raise ValueError(f"{name} must be >= {minimum}{tail}, got {value}")


def _seconds(name: str, value: object, *, positive: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "a number of seconds" + (" or None" if optional else "")
        raise TypeError(f"{name} must be {what}, not {value!r}")
    if positive and not value > 0:
        tail = " (None turns it off)" if optional else ""
        raise ValueError(f"{name} must be > 0 seconds{tail}, got {value}")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value}")


def _origins(policy: object) -> None:
    if policy is None or isinstance(policy, str) or callable(policy):
        return
    if isinstance(policy, (bytes, bytearray)) or not isinstance(policy, Iterable):
        raise TypeError(
            "allowed_origins must be None (same origin), '*', a list of origins such as "
            f"['https://example.com'], or a callable (origin, req) -> bool; not {policy!r}"
        )
    for origin in policy:
        if not isinstance(origin, str):
            raise TypeError(f"allowed_origins must hold origin strings, not {origin!r}")


def _broker_url(url: object) -> None:
    if not isinstance(url, str):
        raise TypeError(f"broker must be a URL string such as 'redis://host:6379/0', not {url!r}")
    scheme = url.split(":", 1)[0].lower() if "://" in url or url.startswith("unix:") else ""
    if scheme not in BROKER_SCHEMES:
        raise ValueError(f"unsupported broker URL {url!r}: use redis://host:port/db")


def writer_thread_count(config: Config) -> int:
    """How many OS threads write a large write round: `write_threads`, or by default 2 where
    the process may run on a second core (its CPU affinity: taskset, a cpuset); confined to
    one, a second thread would only contend for the GIL (`python -m bench --scenarios fanout`,
    servers pinned to one core: 0.82x the deliveries/s at N=1000 with two)."""
    if config.write_threads is not None:
        return config.write_threads
    return 2 if _usable_cores() >= 2 else 1


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1
