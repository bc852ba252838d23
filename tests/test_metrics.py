"""Metrics against real servers: exact counters for a scripted scenario, the exposition checked
by promtool, and a real Prometheus server scraping gunicorn with two workers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect
from wsraw import RawWS

from blaze_green.testing import free_port, wait_until

pytestmark = pytest.mark.slow


def stats(server):
    return requests.get(server.url + "/stats", timeout=5).json()


def scrape(server) -> dict:
    text = requests.get(server.url + "/metrics", timeout=5).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, name, **labels) -> float:
    family = families[name]
    total = 0.0
    for sample in family.samples:
        if sample.name.endswith(("_created",)):
            continue
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            total += sample.value
    return total


def test_counters_move_exactly_as_a_scripted_scenario(serve):
    server = serve("metrics_app:app", env={"SEND_QUEUE": "8", "CLOSE_TIMEOUT": "1"})
    stack = contextlib.ExitStack()
    clients = [stack.enter_context(connect(server.ws_url("/feed"))) for _ in range(5)]
    for ws in clients:
        for i in range(7):
            ws.send(f"m{i}")
            assert ws.recv(timeout=5) == f"m{i}"
    slow = RawWS.connect(server.port, "/feed")  # never reads: overflows its 8-message queue
    slow.send_text("!flood")
    with pytest.raises(Exception) as refused:
        RawWS.connect(server.port, "/feed", headers={"Origin": "http://evil.example"})
    assert getattr(refused.value, "status", None) == 403
    assert requests.get(server.url + "/nope", timeout=5).status_code == 404
    stack.close()
    snap = wait_until(
        lambda: (s := stats(server))["sessions"]["open"].get("/feed") == 0 and s,
        20,
        what="every session to end",
    )
    slow.close()
    assert snap["sessions"]["opened"] == {"/feed": 6}
    closed = {(r["route"], r["code"]): r["count"] for r in snap["sessions"]["closed"]}
    assert closed == {("/feed", 1000): 5, ("/feed", 1013): 1}
    assert snap["sessions"]["handshakes_rejected"] == {"403": 1}
    assert snap["messages"]["received"] == 5 * 7 + 1
    assert snap["broadcast"]["slow_consumer_closes"] == 1
    assert snap["messages"]["sent"] >= 5 * 7 + 8  # the echoes and the flood's queue
    requests_by = {
        (r["method"], r["route"], r["status"]): r["count"] for r in snap["http"]["requests"]
    }
    assert requests_by[("GET", "<unmatched>", 404)] == 1
    # The Prometheus view says the same.
    families = scrape(server)
    assert value(families, "blaze_green_sessions_closed", route="/feed", code="1013") == 1
    assert value(families, "blaze_green_handshakes_rejected", status="403") == 1
    assert value(families, "blaze_green_slow_consumer_closes") == 1


def test_exposition_passes_promtool(serve):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
    server = serve("metrics_app:app")
    with connect(server.ws_url("/chat/lobby")) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        text = requests.get(server.url + "/metrics", timeout=5).content
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b'route="/chat/:room"' in text  # the pattern, not the concrete path


class Prometheus:
    """A real Prometheus server scraping `target` every second, on a free port."""

    def __init__(self, binary: str, target: str, workdir: Path) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: blaze\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ready, 30, 0.2, what="Prometheus to be ready")

    def ready(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=2).ok
        except requests.ConnectionError:
            return False

    def query(self, expr: str) -> float | None:
        r = requests.get(
            f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": expr}, timeout=5
        ).json()
        result = r["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def worker_sessions(server) -> dict[int, int]:
    """Open /feed sessions per worker pid, asking until both workers have answered."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        r = requests.get(server.url + "/local", headers={"Connection": "close"}, timeout=5).json()
        seen[r["pid"]] = r["open"]
    return seen


def test_prometheus_sees_the_whole_gunicorn_server(serve, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package prometheus; .ci/run installs it)")
    env = {"BLAZE_METRICS_DIR": str(tmp_path / "metrics")}
    server = serve("metrics_app:app", mode="gunicorn", workers=2, env=env)
    prom = Prometheus(binary, f"127.0.0.1:{server.port}", tmp_path)
    clients: list = []
    stack = contextlib.ExitStack()
    try:
        # Open sessions until both workers hold some (the kernel picks the accepting worker).
        while len(clients) < 60:
            clients.extend(stack.enter_context(connect(server.ws_url("/feed"))) for _ in range(10))
            for ws in clients[-10:]:
                ws.send("x")
                assert ws.recv(timeout=5) == "x"
            per_worker = worker_sessions(server)
            if len(per_worker) == 2 and all(per_worker.values()):
                break
        per_worker = worker_sessions(server)
        assert len(per_worker) == 2 and sum(per_worker.values()) == len(clients), per_worker
        n = len(clients)
        wait_until(
            lambda: prom.query('sum(blaze_green_sessions_open{route="/feed"})') == n,
            30,
            0.5,
            what=f"Prometheus to see {n} sessions over both workers",
        )
        assert prom.query("max(blaze_green_processes)") == 2
        # A worker killed with its sessions: its gauges leave the totals, its counters stay.
        victim, lost = next((pid, k) for pid, k in per_worker.items() if k)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: (
                (f := scrape(server))
                and value(f, "blaze_green_sessions_open", route="/feed") == n - lost
                and value(f, "blaze_green_sessions_opened", route="/feed") == n
            ),
            30,
            0.5,
            what="the dead worker's sessions to leave the gauge and stay in the counter",
        )
        stack.close()
        wait_until(
            lambda: prom.query('sum(blaze_green_sessions_open{route="/feed"})') == 0,
            30,
            0.5,
            what="Prometheus to see every session closed",
        )
    finally:
        stack.close()
        prom.stop()


DOCS = Path(__file__).parent.parent / "docs"


def test_the_documented_alerts_and_dashboard_are_valid_promql(serve, tmp_path):
    """Every alert rule in docs/observability.md passes `promtool check rules`, every dashboard
    query is accepted by Prometheus, and every metric they name is in a real exposition."""
    binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if binary is None or promtool is None:
        pytest.skip("prometheus not installed (Debian package prometheus; .ci/run installs it)")
    doc = (DOCS / "observability.md").read_text(encoding="utf-8")
    rules = next(b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "groups:" in b)
    (tmp_path / "rules.yml").write_text(rules)
    checked = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()

    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    server = serve("metrics_app:app")
    exposed = set(scrape(server))
    prom = Prometheus(binary, f"127.0.0.1:{server.port}", tmp_path)
    try:
        for expr in exprs:
            concrete = expr.replace("$job", ".*")
            r = requests.get(
                f"http://127.0.0.1:{prom.port}/api/v1/query", params={"query": concrete}, timeout=5
            ).json()
            assert r["status"] == "success", (expr, r)
    finally:
        prom.stop()
    named = set(re.findall(r"blaze_green_[a-z_]+", rules + " ".join(exprs)))
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in named}
    broker_only = {f for f in families if f.startswith("blaze_green_broker")}
    assert families - broker_only <= exposed, families - exposed  # broker ones need a broker


def test_broker_metrics_with_a_real_redis(serve):
    from redis_server import RedisServer

    redis = RedisServer().start()
    try:
        env = {"BLAZE_BROKER_URL": redis.url}
        a = serve("metrics_app:app", env=env)
        b = serve("metrics_app:app", env=env)
        for server in (a, b):
            server.wait_for_output("subscribed to blaze_green:ctl:0", 10)
        with connect(b.ws_url("/chat/lobby")) as ws:
            wait_until(lambda: stats(b)["sessions"]["open"].get("/chat/:room") == 1, 5)
            r = requests.post(a.url + "/broadcast", params={"path": "/chat/lobby"}, timeout=5)
            assert r.json() == {"n": 0}  # nobody on a: it went through Redis
            assert ws.recv(timeout=5) == "hi"
        broker_a = wait_until(
            lambda: stats(a)["broker"]["published"] == 1 and stats(a)["broker"], 5
        )
        broker_b = stats(b)["broker"]
        assert broker_a["connected"] and broker_b["connected"]
        assert broker_b["received"] == 1
        assert 0 <= broker_b["seconds_since_contact"] < 5
        families = scrape(b)
        assert value(families, "blaze_green_broker_connected") == 1
        assert value(families, "blaze_green_broker_received") == 1
        redis.kill()
        wait_until(lambda: not stats(a)["broker"]["connected"], 15, what="the outage to show")
        assert value(scrape(a), "blaze_green_broker_connected") == 0
    finally:
        redis.stop()
