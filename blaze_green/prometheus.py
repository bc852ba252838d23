"""Prometheus exposition of a metrics snapshot, through prometheus_client (extra `metrics`).

`exposition(snapshot)` renders a `blaze_green.metrics` snapshot (one process's, or the merge of
a server's workers) in the Prometheus text format with prometheus_client's own metric families
and writer, so names, escaping and histogram `le` buckets are what Prometheus expects.
`docs/observability.md` lists every metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

try:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.core import (
        CollectorRegistry,
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "Prometheus metrics need prometheus_client: pip install 'blaze-green[metrics]'"
    ) from exc

__all__ = ["CONTENT_TYPE", "exposition"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
P = "blaze_green_"


def _buckets(h: dict[str, Any]) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs from per-bucket counts; the last is +Inf."""
    out = []
    total = 0
    for bound, n in zip([*h["buckets"], float("inf")], h["counts"], strict=True):
        total += n
        out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
    return out


def _histogram(
    name: str, doc: str, h: dict[str, Any] | None, labels: dict[str, str] | None = None
) -> HistogramMetricFamily:
    labels = labels or {}
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    if h is not None:
        family.add_metric(list(labels.values()), _buckets(h), h["sum"])
    return family


class _SnapshotCollector:
    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:  # noqa: C901 - one block per metric, in doc order
        s = self.snap
        sessions = s["sessions"]
        g = GaugeMetricFamily(P + "sessions_open", "Open WebSocket sessions.", labels=["route"])
        for route, n in sorted(sessions["open"].items()):
            g.add_metric([route], n)
        yield g
        c = CounterMetricFamily(
            P + "sessions_opened", "WebSocket sessions opened.", labels=["route"]
        )
        for route, n in sorted(sessions["opened"].items()):
            c.add_metric([route], n)
        yield c
        c = CounterMetricFamily(
            P + "sessions_closed",
            "WebSocket sessions closed, by close code.",
            labels=["route", "code"],
        )
        for row in sessions["closed"]:
            c.add_metric([row["route"], str(row["code"])], row["count"])
        yield c
        c = CounterMetricFamily(
            P + "handshakes_rejected",
            "WebSocket handshakes refused, by HTTP status.",
            labels=["status"],
        )
        for status, n in sorted(sessions["handshakes_rejected"].items()):
            c.add_metric([str(status)], n)
        yield c

        m = s["messages"]
        for key, name, doc in (
            ("received", "messages_received", "WebSocket messages received from clients."),
            ("sent", "messages_sent", "WebSocket messages queued to sessions (each delivery)."),
            (
                "payload_bytes_received",
                "payload_received_bytes",
                "Payload bytes of messages received.",
            ),
            (
                "payload_bytes_sent",
                "payload_sent_bytes",
                "Payload bytes of messages queued to sessions.",
            ),
            ("bytes_received", "socket_received_bytes", "Bytes read from WebSocket connections."),
            ("bytes_written", "socket_written_bytes", "Bytes written to WebSocket connections."),
        ):
            yield CounterMetricFamily(P + name, doc, value=m.get(key, 0))

        b = s["broadcast"]
        for key, name, doc in (
            ("broadcasts", "broadcasts", "app.broadcast calls."),
            ("deliveries", "deliveries", "Broadcast messages handed to a session."),
            (
                "slow_consumer_closes",
                "slow_consumer_closes",
                "Sessions closed with 1013 (send queue overflow).",
            ),
            ("ping_timeouts", "ping_timeouts", "Sessions closed for not answering a ping in time."),
            (
                "shared_write_rounds",
                "shared_write_rounds",
                "Write rounds written by the writer threads together (write_threads > 1).",
            ),
        ):
            yield CounterMetricFamily(P + name, doc, value=b.get(key, 0))
        c = CounterMetricFamily(
            P + "protocol_errors",
            "Sessions closed for breaking RFC 6455, by close code.",
            labels=["code"],
        )
        for code, n in sorted(b["protocol_errors"].items()):
            c.add_metric([str(code)], n)
        yield c
        yield _histogram(
            P + "broadcast_latency_seconds",
            "From app.broadcast to the frame fully written to a socket "
            "(one session sampled per broadcast).",
            b["latency_seconds"],
        )
        yield _histogram(
            P + "write_round_seconds",
            "Duration of one write round over the sessions with queued frames.",
            b["write_round_seconds"],
        )

        http = s["http"]
        c = CounterMetricFamily(
            P + "http_requests",
            "HTTP requests, by method, route pattern and status.",
            labels=["method", "route", "status"],
        )
        for row in http["requests"]:
            c.add_metric([row["method"], row["route"], str(row["status"])], row["count"])
        yield c
        h = HistogramMetricFamily(
            P + "http_request_duration_seconds",
            "HTTP request handling time.",
            labels=["method", "route"],
        )
        for row in http["latency_seconds"]:
            h.add_metric([row["method"], row["route"]], _buckets(row), row["sum"])
        yield h

        tasks = s["tasks"]
        yield GaugeMetricFamily(
            P + "tasks_running", "Background tasks running.", value=tasks["running"]
        )
        yield CounterMetricFamily(
            P + "task_failures", "Background tasks that raised.", value=tasks["failures"]
        )

        broker = s.get("broker")
        if broker is not None:
            yield GaugeMetricFamily(
                P + "broker_connected",
                "1 when every process reaches the broker.",
                value=1 if broker["connected"] else 0,
            )
            age = broker.get("seconds_since_contact")
            yield GaugeMetricFamily(
                P + "broker_last_contact_age_seconds",
                "Seconds since the broker last answered (the oldest over the processes).",
                value=float("nan") if age is None else age,
            )
            for key, name, doc in (
                ("published", "broker_published", "Messages published to the broker."),
                ("received", "broker_received", "Messages received from other processes."),
                (
                    "ignored",
                    "broker_ignored",
                    "Messages received for a path without local sessions (just unsubscribed).",
                ),
                (
                    "dropped",
                    "broker_dropped",
                    "Messages not published (broker down or outbox full).",
                ),
                (
                    "reconnects",
                    "broker_reconnects",
                    "Times the broker connection came back after an outage.",
                ),
            ):
                yield CounterMetricFamily(P + name, doc, value=broker.get(key, 0))
            yield GaugeMetricFamily(
                P + "broker_subscriptions",
                "Paths whose broker channel this server is subscribed to (they have sessions).",
                value=broker.get("subscriptions", 0),
            )
            yield GaugeMetricFamily(
                P + "broker_backlog_bytes",
                "Bytes of published messages waiting to reach the broker (bounded).",
                value=broker.get("backlog_bytes", 0),
            )

        procs = s.get("processes")
        if isinstance(procs, dict):
            yield GaugeMetricFamily(
                P + "processes", "Server processes whose metrics are included.", value=procs["live"]
            )


def exposition(snapshot: dict[str, Any]) -> bytes:
    """The Prometheus text format of `snapshot`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
