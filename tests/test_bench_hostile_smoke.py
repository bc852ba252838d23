"""Smoke test of `python -m bench.hostile` at tiny sizes (churn, ping flood, broadcast15k and
sigterm; redishang's small version is in tests/test_faults.py), so the probes do not rot: each
starts a real server and real clients. Only counts are checked, no timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_hostile_probes_run_and_report_bounded_costs():
    env = dict(os.environ)
    env.pop("BLAZE_GREEN_NO_PATCH", None)  # conftest sets it; the probe's server must patch
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.hostile",
            "--quick",
            "--probes",
            "churn,pingflood,broadcast15k,sigterm",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = {
        r["probe"]: r
        for r in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
    }
    churn, flood = results["churn"], results["pingflood"]
    assert churn["cycles"] == 400 and churn["errors"] == 0
    assert churn["fds_after"] == churn["fds_before"]
    assert churn["sessions_after"] == 0
    assert flood["pings_sent"] > 0 and flood["slow_consumer_closes"] == 1
    assert flood["rss_growth_kib"] < 8 * 1024
    fanout, term = results["broadcast15k"], results["sigterm"]
    assert fanout["deliveries"] == fanout["expected"] == 200 * 5 and fanout["order_errors"] == 0
    assert fanout["ping_timeouts"] == 0 and fanout["pongs_in_6s"] >= 200
    assert term["exit_code"] == 0 and term["close_1001"] == term["on_close"] == 100
    assert "| churn |" in proc.stdout and "| pingflood |" in proc.stdout
