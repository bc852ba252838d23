"""The locust load test (loadtests/locustfile.py) against the real examples, briefly, and the
reporting of blaze_green.testing.locust.WebSocketUser.

Locust monkey-patches gevent when imported, so it runs in a child process
(loadtests/run_locust.py, which prints its statistics as JSON); this process stays unpatched.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from blaze_green.testing import ServerProcess

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
RUNNER = ROOT / "loadtests" / "run_locust.py"
USER_CLASSES = ["PageVisitor", "FeedChatter", "TickSubscriber", "ChatMember", "Churner"]

# Not importorskip: importing locust here would monkey-patch this process.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None, reason="locust is not installed"
)


def run_locust(*args, timeout=60):
    env = {k: v for k, v in os.environ.items() if k != "BLAZE_GREEN_NO_PATCH"}
    proc = subprocess.run(
        [sys.executable, str(RUNNER), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_locust_runs_against_the_examples():
    with (
        ServerProcess("feed:app", cwd=EXAMPLES) as feed,
        ServerProcess("chat:app", cwd=EXAMPLES) as chat,
    ):
        stats, log = run_locust(
            "--host",
            feed.url,
            "--chat-host",
            chat.url,
            "--users",
            "25",
            "--spawn-rate",
            "25",
            "--run-time",
            "7",
        )
    details = json.dumps(stats["errors"] + stats["exceptions"], indent=1) + log[-3000:]
    assert stats["total"]["num_failures"] == 0, details
    assert stats["exceptions"] == [], details
    for name in USER_CLASSES:
        assert stats["by_user_class"][name]["requests"] > 0, (name, stats["by_user_class"])
    entries = {(e["type"], e["name"]): e for e in stats["entries"]}

    def count(*keys):
        return sum(entries.get(key, {}).get("num_requests", 0) for key in keys)

    # Rows every run must have (tasks that some user of each class surely ran in 7 s).
    assert count(("GET", "feed page"), ("GET", "chat page")) > 0, sorted(entries)
    for name in ["connect feed", "receive feed echo", "connect /ticks", "connect /heartbeat"]:
        assert count(("WS", name)) > 0, (name, sorted(entries))
    for name in ["connect chat", "receive chat join"]:
        assert count(("WS", name)) > 0, (name, sorted(entries))
    assert count(("WS", "connect feed churn"), ("WS", "connect chat churn")) > 0
    # Ten ticks a second to every subscriber; push latency on one machine is milliseconds.
    assert count(("WS", "push /ticks")) >= 50
    assert entries[("WS", "push /ticks")]["p50_ms"] < 500


def test_websocket_user_reports_failures():
    result, log = run_locust("--selftest", timeout=30)
    events = result["events"]
    by_name = {}
    for event in events:
        by_name.setdefault(event["name"], []).append(event)

    def failures(name):
        return [e["failure"] for e in by_name.get(name, []) if e["failure"]]

    assert result["echo"] == "hi"
    assert all(e["type"] == "WS" for e in events)
    assert [e["failure"] for e in by_name["connect /echo"]] == [None]
    assert by_name["send /echo"][0]["length"] == 2 and not by_name["send /echo"][0]["failure"]
    assert by_name["receive /echo"][0]["failure"] is None
    # Refused handshakes are failures naming the status.
    assert result["rejected_404"] and "404" in failures("connect /nope")[0]
    assert result["rejected_403"] and "403" in failures("connect evil")[0]
    # Pushes (JSON with "ts") are consumed and timed; a seq gap is a failure; others are inbox.
    pushes = by_name["push /gappy"]
    assert len(pushes) == 3 and all(e["failure"] is None for e in pushes)
    assert all(0 <= e["response_time"] < 5000 for e in pushes)
    assert failures("seq gap /gappy") == ["SequenceGap: expected seq 3, got 4"]
    assert result["not_a_push"] == "not a push"
    # A receive timeout and a 1009 close by the server are failures too.
    assert result["timeout_reported"] and "TimeoutError" in failures("receive /echo")[0]
    assert result["closed_1009"] and "1009" in failures("closed /echo")[0]
    # on_stop closed everything and stopped the receive greenlets.
    assert result["readers_dead"]


def test_locust_module_imports_where_locust_is_installed():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import blaze_green.testing.locust as m; print(m.WebSocketUser.abstract)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr
