"""Smoke test of the benchmark suite: `python -m bench --quick` runs every scenario at a tiny
size, so that none of them rots. Benchmarks are not tests: nothing here checks a timing, only
that each scenario produced a measurement for blaze_green and for every installed peer, and
that the report (markdown, one PNG chart per scenario, JSON) was written."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import GUNICORN_SPECS, SERVERS  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RUN_TIMEOUT_S = 150


def installed(spec) -> bool:
    return all(importlib.util.find_spec(m) for m in spec.module.split(",") if m)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    json_path, md_path = tmp / "results.json", tmp / "BENCHMARKS.md"
    env = dict(os.environ)
    env.pop("BLAZE_GREEN_NO_PATCH", None)  # conftest sets it; the bench's servers must patch
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--json",
            str(json_path),
            "--out-md",
            str(md_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(json_path.read_text())
    return {"data": data, "md": md_path, "stderr": proc.stderr, "stdout": proc.stdout}


def expected_servers(scenario: str) -> list[str]:
    sc = SCENARIOS[scenario]
    out = []
    for name in sc.servers:
        specs = [SERVERS[name]]
        if sc.spec_for is not None and name in GUNICORN_SPECS:
            specs.append(GUNICORN_SPECS[name])
        if name == "blaze" or all(installed(s) for s in specs):
            out.append(name)
    return out


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenario_measures_blaze_and_installed_peers(quick_run, scenario):
    if scenario == "http_hello" and not shutil.which("wrk"):
        pytest.skip("wrk is not installed")
    if scenario == "cluster" and not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    entry = quick_run["data"]["scenarios"][scenario]
    assert not entry.get("skipped"), entry.get("skipped")
    servers = expected_servers(scenario)
    assert "blaze" in servers
    for case in entry["cases"]:
        for server in servers:
            row = entry["rows"][f"{case}|{server}"]
            assert row["runs"], f"{scenario} {case} {server}: {row['failures'][:1]}"
            assert not row["failures"], f"{scenario} {case} {server}: {row['failures'][:1]}"
    if scenario == "cluster":
        gunicorn_cases = [c for c in entry["cases"] if "gunicorn" in c]
        assert gunicorn_cases
        for case in gunicorn_cases:
            for run in entry["rows"][f"{case}|blaze"]["runs"]:
                assert run["gunicorn_workers"] >= 2
                assert run["deliveries"] == run["expected"]


DEFLATE_SERVERS = {"blaze": True, "blaze_nodeflate": False, "websockets_deflate": True}


@pytest.mark.parametrize("scenario", ["fanout_deflate", "echo_deflate", "idle_memory_deflate"])
def test_deflate_scenarios_negotiate_and_inflate(quick_run, scenario):
    """Compression on: every connection negotiated permessage-deflate and every message the
    load generator counted arrived compressed (and was inflated and checked); off: none."""
    entry = quick_run["data"]["scenarios"][scenario]
    servers = expected_servers(scenario)
    for case in entry["cases"]:
        for server, on in DEFLATE_SERVERS.items():
            if server not in servers:
                continue
            runs = entry["rows"][f"{case}|{server}"]["runs"]
            assert runs, f"{scenario} {server}: no run"
            for run in runs:
                assert run["deflate_offered"] is True
                assert run["deflate_conns"] == (run["conns"] if on else 0), (server, run)
                assert not run["inflate_errors"] and not run["proto_errors"]
                if scenario == "idle_memory_deflate":
                    continue
                assert run["rx_msgs"] > 0
                assert run["rx_compressed"] == (run["rx_msgs"] if on else 0), (server, run)
                ratio = run["wire_bytes_per_msg"] / run["payload_bytes_per_msg"]
                assert ratio < 0.5 if on else ratio > 1.0, (server, ratio)
    text = quick_run["md"].read_text()
    assert "## Compression (permessage-deflate): targets and bytes on the wire" in text


def test_report_markdown_charts_and_json(quick_run):
    data, md = quick_run["data"], quick_run["md"]
    assert data["meta"]["quick"] is True
    text = md.read_text()
    assert text.startswith("# Benchmarks")
    assert "python -m bench --quick" in text
    for name, entry in data["scenarios"].items():
        assert f"## {name} — " in text
        if entry.get("skipped"):
            continue
        png = md.parent / "bench" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"](bench/{name}.png)" in text
    # the markdown also went to stdout, and progress went to stderr step by step
    assert "## fanout — " in quick_run["stdout"]
    assert "[fanout " in quick_run["stderr"]


def _bench_module(module, *args, tmp_path):
    env = dict(os.environ)
    env.pop("BLAZE_GREEN_NO_PATCH", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


@pytest.mark.redis
@pytest.mark.skipif(
    (shutil.which("redis-server") is None or shutil.which("redis-cli") is None)
    and not os.environ.get("CI"),
    reason="needs redis-server and redis-cli",
)
@pytest.mark.parametrize("cluster", [False, True], ids=["one-redis", "redis-cluster"])
def test_rooms_bench_counts_match_the_model(tmp_path, cluster):
    """`python -m bench.rooms` at a tiny size: every member gets its messages exactly once and
    each process receives what the cost model of docs/scaling.md predicts."""
    out = tmp_path / "rooms.json"
    args = ["--rooms", "24", "--procs", "3", "--msgs", "2", "--json", str(out)]
    if cluster:
        args += ["--redis-cluster", "3"]
    proc = _bench_module("bench.rooms", *args, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (result,) = json.loads(out.read_text())
    assert result["exact"]
    for row in result["rows"]:
        assert row["received"] == row["predicted_interest"], row
        assert row["ignored"] == 0


@pytest.mark.redis
@pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("CI"), reason="")
def test_cluster_start_bench_runs(tmp_path):
    """`python -m bench.cluster_start` at a tiny size reports its table."""
    proc = _bench_module(
        "bench.cluster_start", "--sessions", "5", "--count", "20", "--reps", "1", tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| this tree |" in proc.stdout
