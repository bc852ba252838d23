"""`Metrics`: every counter, gauge and histogram of one server process, and their snapshots.

Updated where each event happens, with plain integer additions: per broadcast (not per
session), per socket write, per received message, per session open and close, per HTTP request,
per write round. Nothing here loops over sessions, takes a lock or does I/O on those paths.

`snapshot()` is a plain dict (what `app.stats()` returns); `merge(snapshots)` adds up those of
several processes (gunicorn workers): counters and histograms are summed over every process
that ever wrote one (a dead worker's counts stay, so totals never go backwards), gauges over the
live processes only (a dead worker's sessions are gone) — the rule prometheus_client's
multiprocess mode applies to counters and `livesum` gauges. `blaze_green.prometheus` turns a
snapshot into the Prometheus exposition format.

The broadcast latency histogram is sampled: for each broadcast, the last session it was queued
to carries a timestamp, and the time from `broadcast()` to the moment the write that completes
that session's chunk returns is observed (one sample per broadcast, from the session served
last in the delivery order, so the samples lean towards the slow end of each broadcast).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from typing import Any, Final

__all__ = ["Histogram", "Metrics", "merge", "LATENCY_BUCKETS", "ROUND_BUCKETS"]

# Seconds. Real-time delivery lives between a millisecond and a second.
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip
ROUND_BUCKETS: Final = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
HTTP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

UNMATCHED: Final = "<unmatched>"  # the route label of requests no route matched


class Histogram:
    """Counts of observations per bucket (not cumulative: `le` sums are made at export)."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "buckets": list(self.bounds),
            "counts": list(self.counts),
            "sum": self.sum,
            "count": self.count,
        }


class Metrics:
    """One process's metrics. Attributes are updated in place by the runtime, the sessions,
    the app and the server; read them through `snapshot()`."""

    def __init__(self) -> None:
        self.started = time.time()
        # WebSocket sessions, by route pattern ("/chat/:room" is one label value).
        self.sessions_open: Counter[str] = Counter()
        self.sessions_opened: Counter[str] = Counter()
        self.sessions_closed: Counter[tuple[str, int]] = Counter()  # (route, close code)
        self.handshakes_rejected: Counter[int] = Counter()  # by HTTP status
        # Messages and bytes.
        self.messages_received = 0
        self.messages_sent = 0  # messages queued to a session (each delivery of a broadcast)
        self.payload_bytes_received = 0
        self.payload_bytes_sent = 0
        self.bytes_received = 0  # read from sockets by sessions (frames included)
        self.bytes_written = 0  # written to sockets by sessions
        # Broadcast.
        self.broadcasts = 0
        self.deliveries = 0
        self.slow_consumer_closes = 0  # 1013
        self.ping_timeouts = 0
        self.protocol_errors: Counter[int] = Counter()  # by close code (1002, 1007, 1009)
        self.broadcast_latency = Histogram(LATENCY_BUCKETS)
        self.write_rounds = Histogram(ROUND_BUCKETS)
        self.shared_write_rounds = 0  # rounds written by the writer threads together
        # HTTP.
        self.http_requests: Counter[tuple[str, str, int]] = Counter()  # method, route, status
        self.http_latency: dict[tuple[str, str], Histogram] = {}  # (method, route)
        # Tasks (the running count is read from the task group at snapshot time).
        self.task_failures = 0

    # -- events that need more than an addition -----------------------------------------------

    def session_opened(self, route: str) -> None:
        self.sessions_open[route] += 1
        self.sessions_opened[route] += 1

    def session_closed(self, route: str, code: int) -> None:
        self.sessions_open[route] -= 1
        self.sessions_closed[route, int(code)] += 1

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests[method, route, status] += 1
        histogram = self.http_latency.get((method, route))
        if histogram is None:
            histogram = self.http_latency[method, route] = Histogram(HTTP_BUCKETS)
        histogram.observe(seconds)

    # -- reading ----------------------------------------------------------------------------------

    def snapshot(self, **gauges: Any) -> dict[str, Any]:
        """A plain-dict copy of everything; `gauges` adds values read elsewhere (tasks running,
        broker state), which the runtime passes in."""
        return {
            "sessions": {
                "open": dict(self.sessions_open),
                "opened": dict(self.sessions_opened),
                "closed": [
                    {"route": route, "code": code, "count": n}
                    for (route, code), n in sorted(self.sessions_closed.items())
                ],
                "handshakes_rejected": {
                    str(k): v for k, v in sorted(self.handshakes_rejected.items())
                },
            },
            "messages": {
                "received": self.messages_received,
                "sent": self.messages_sent,
                "payload_bytes_received": self.payload_bytes_received,
                "payload_bytes_sent": self.payload_bytes_sent,
                "bytes_received": self.bytes_received,
                "bytes_written": self.bytes_written,
            },
            "broadcast": {
                "broadcasts": self.broadcasts,
                "deliveries": self.deliveries,
                "slow_consumer_closes": self.slow_consumer_closes,
                "ping_timeouts": self.ping_timeouts,
                "protocol_errors": {str(k): v for k, v in sorted(self.protocol_errors.items())},
                "latency_seconds": self.broadcast_latency.snapshot(),
                "write_round_seconds": self.write_rounds.snapshot(),
                "shared_write_rounds": self.shared_write_rounds,
            },
            "http": {
                "requests": [
                    {"method": m, "route": r, "status": s, "count": n}
                    for (m, r, s), n in sorted(self.http_requests.items())
                ],
                "latency_seconds": [
                    {"method": m, "route": r, **h.snapshot()}
                    for (m, r), h in sorted(self.http_latency.items())
                ],
            },
            "tasks": {"failures": self.task_failures, "running": gauges.get("tasks_running", 0)},
            "broker": gauges.get("broker"),
            "process": {"started": self.started},
        }


# -- adding up processes ------------------------------------------------------------------------


# The broadcast counters summed over processes (a snapshot from an older process may lack one).
_BROADCAST_COUNTERS = (
    "broadcasts",
    "deliveries",
    "slow_consumer_closes",
    "ping_timeouts",
    "shared_write_rounds",
)


def merge(snapshots: list[dict[str, Any]], live: list[bool]) -> dict[str, Any]:
    """One snapshot for several processes: counters and histograms summed over all, gauges
    (open sessions, running tasks, broker state) over the live ones (`live[i]` for
    `snapshots[i]`)."""
    out: dict[str, Any] = {
        "sessions": {"open": Counter(), "opened": Counter(), "closed": Counter(),
                     "handshakes_rejected": Counter()},
        "messages": Counter(),
        "broadcast": {"counters": Counter(), "protocol_errors": Counter(), "latency_seconds": None,
                      "write_round_seconds": None},
        "http": {"requests": Counter(), "latency_seconds": {}},
        "tasks": {"failures": 0, "running": 0},
        "broker": None,
        "processes": len(snapshots),
        "live_processes": sum(live),
    }  # fmt: skip
    key: str | tuple[str, str]  # a histogram's name, then an HTTP (method, route)
    brokers = []
    for snap, alive in zip(snapshots, live, strict=True):
        sessions = snap["sessions"]
        if alive:
            out["sessions"]["open"].update(sessions["open"])
            out["tasks"]["running"] += snap["tasks"]["running"]
            if snap.get("broker"):
                brokers.append(snap["broker"])
        out["sessions"]["opened"].update(sessions["opened"])
        for row in sessions["closed"]:
            out["sessions"]["closed"][row["route"], row["code"]] += row["count"]
        out["sessions"]["handshakes_rejected"].update(sessions["handshakes_rejected"])
        out["messages"].update(snap["messages"])
        b = snap["broadcast"]
        out["broadcast"]["counters"].update({k: b.get(k, 0) for k in _BROADCAST_COUNTERS})
        out["broadcast"]["protocol_errors"].update(b["protocol_errors"])
        for key in ("latency_seconds", "write_round_seconds"):
            out["broadcast"][key] = _add_histograms(out["broadcast"][key], b[key])
        for row in snap["http"]["requests"]:
            out["http"]["requests"][row["method"], row["route"], row["status"]] += row["count"]
        for row in snap["http"]["latency_seconds"]:
            key = (row["method"], row["route"])
            table = out["http"]["latency_seconds"]
            table[key] = _add_histograms(table.get(key), row)
        out["tasks"]["failures"] += snap["tasks"]["failures"]
    if brokers:
        out["broker"] = _merge_brokers(brokers)
    # Back to the snapshot shape.
    sessions = out["sessions"]
    return {
        "sessions": {
            "open": dict(sessions["open"]),
            "opened": dict(sessions["opened"]),
            "closed": [
                {"route": r, "code": c, "count": n}
                for (r, c), n in sorted(sessions["closed"].items())
            ],
            "handshakes_rejected": dict(sessions["handshakes_rejected"]),
        },
        "messages": dict(out["messages"]),
        "broadcast": {
            **out["broadcast"]["counters"],
            "protocol_errors": dict(out["broadcast"]["protocol_errors"]),
            "latency_seconds": out["broadcast"]["latency_seconds"],
            "write_round_seconds": out["broadcast"]["write_round_seconds"],
        },
        "http": {
            "requests": [
                {"method": m, "route": r, "status": s, "count": n}
                for (m, r, s), n in sorted(out["http"]["requests"].items())
            ],
            "latency_seconds": [
                {"method": m, "route": r, **h}
                for (m, r), h in sorted(out["http"]["latency_seconds"].items())
            ],
        },
        "tasks": out["tasks"],
        "broker": out["broker"],
        "processes": {"count": out["processes"], "live": out["live_processes"]},
    }  # fmt: skip


def _add_histograms(total: dict[str, Any] | None, one: dict[str, Any]) -> dict[str, Any]:
    if total is None:
        return {
            "buckets": list(one["buckets"]),
            "counts": list(one["counts"]),
            "sum": one["sum"],
            "count": one["count"],
        }
    if total["buckets"] != list(one["buckets"]):  # another version's buckets: keep the first
        return total
    total["counts"] = [a + b for a, b in zip(total["counts"], one["counts"], strict=True)]
    total["sum"] += one["sum"]
    total["count"] += one["count"]
    return total


def _merge_brokers(brokers: list[dict[str, Any]]) -> dict[str, Any]:
    """Counters summed; connected only if every live process is; contact as old as the oldest."""
    merged: dict[str, Any] = {
        key: sum(b.get(key, 0) for b in brokers)
        for key in (
            "published",
            "received",
            "ignored",
            "dropped",
            "reconnects",
            "subscriptions",
            "backlog_bytes",
        )
    }
    merged["connected"] = all(b.get("connected") for b in brokers)
    ages = [
        b["seconds_since_contact"] for b in brokers if b.get("seconds_since_contact") is not None
    ]
    merged["seconds_since_contact"] = max(ages) if ages else None
    return merged
