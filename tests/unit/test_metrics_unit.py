"""Metrics without a server: histograms, adding up processes, the Prometheus exposition."""

import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from blaze_green import App
from blaze_green.metrics import Histogram, Metrics, merge
from blaze_green.prometheus import exposition


def test_histogram_buckets_are_upper_bounds():
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    assert h.counts == [2, 1, 1]  # <= 0.1, <= 1.0, +Inf
    assert h.count == 4 and h.sum == pytest.approx(3.65)


def scenario(opened=3, closed_1013=1, messages=10):
    m = Metrics()
    for _ in range(opened):
        m.session_opened("/chat/:room")
    for _ in range(closed_1013):
        m.session_closed("/chat/:room", 1013)
        m.slow_consumer_closes += 1
    m.messages_received += messages
    m.handshakes_rejected[403] += 1
    m.broadcast_latency.observe(0.003)
    m.http_request("GET", "/hello", 200, 0.002)
    return m.snapshot(tasks_running=2)


def test_merge_sums_counters_of_all_and_gauges_of_the_live_only():
    live, dead = scenario(), scenario(opened=5, closed_1013=0, messages=7)
    total = merge([live, dead], [True, False])
    assert total["sessions"]["open"] == {"/chat/:room": 2}  # the dead worker's 5 are gone
    assert total["sessions"]["opened"] == {"/chat/:room": 8}  # its counts stay
    assert total["messages"]["received"] == 17
    assert total["broadcast"]["slow_consumer_closes"] == 1
    assert total["sessions"]["handshakes_rejected"] == {"403": 2}
    assert total["broadcast"]["latency_seconds"]["count"] == 2
    assert total["tasks"]["running"] == 2
    assert total["processes"] == {"count": 2, "live": 1}


def test_exposition_parses_with_prometheus_clients_own_parser():
    text = exposition(merge([scenario()], [True])).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    opened = families["blaze_green_sessions_opened"]
    assert opened.type == "counter"
    assert [(s.labels, s.value) for s in opened.samples if s.name.endswith("_total")] == [
        ({"route": "/chat/:room"}, 3.0)
    ]
    assert families["blaze_green_sessions_open"].samples[0].value == 2.0
    closed = families["blaze_green_sessions_closed"].samples[0]
    assert closed.labels == {"route": "/chat/:room", "code": "1013"} and closed.value == 1
    latency = families["blaze_green_broadcast_latency_seconds"]
    assert latency.type == "histogram"
    inf = [s for s in latency.samples if s.labels.get("le") == "+Inf"]
    assert inf[0].value == 1.0
    http = families["blaze_green_http_requests"].samples[0]
    assert http.labels == {"method": "GET", "route": "/hello", "status": "200"}


def test_stats_is_empty_with_metrics_off():
    assert App(metrics=False).stats() == {}
    with pytest.raises(ValueError, match="metrics=True"):
        App(metrics=False).metrics_route()


def test_metrics_route_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "blaze_green.prometheus", raising=False)
    with pytest.raises(RuntimeError, match=r"pip install 'blaze-green\[metrics\]'"):
        App().metrics_route("/metrics")


def test_default_metrics_directories_of_dead_masters_are_removed(tmp_path, monkeypatch):
    import subprocess

    from blaze_green import metrics_files

    monkeypatch.delenv("BLAZE_METRICS_DIR", raising=False)
    monkeypatch.setattr(metrics_files.tempfile, "gettempdir", lambda: str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"blaze_green-metrics-{dead.pid}").mkdir()
    import os

    alive = tmp_path / f"blaze_green-metrics-{os.getpid()}"
    alive.mkdir()
    chosen = metrics_files.default_directory(123456789)
    assert chosen == tmp_path / "blaze_green-metrics-123456789"
    assert not (tmp_path / f"blaze_green-metrics-{dead.pid}").exists()
    assert alive.exists()
