"""Coverage-guided fuzzing (atheris) of the frame parser, the header parser and the handshake
checks, for a bounded time on every CI run; `python -m bench.fuzz all --seconds 600` runs
longer. A crash (an undocumented exception, a hang, memory past the limit) fails the test
with libFuzzer's report and the input that caused it."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is in the test extra; pip install atheris")

ROOT = Path(__file__).parent.parent
SECONDS = int(os.environ.get("BLAZE_FUZZ_SECONDS", "4"))


@pytest.mark.parametrize("target", ["frames", "headers", "handshake"])
def test_fuzz_target_finds_nothing(target, tmp_path):
    # libFuzzer reads its RSS as the process's peak, which Linux carries over fork and exec: a
    # child of this pytest process starts at pytest's own peak (over 1 GiB late in a full run).
    # The limit is 1 GiB above that, so the fuzzed code itself may use at most 1 GiB.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.fuzz",
            target,
            f"-max_total_time={SECONDS}",
            f"-rss_limit_mb={inherited_mb + 1024}",
            "-timeout=10",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + 60,
        env=dict(os.environ, BLAZE_GREEN_NO_PATCH="1", PYTHONPATH=str(ROOT)),
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-4000:]
    runs = [line for line in report.splitlines() if line.startswith("Done ") and " runs " in line]
    assert runs and int(runs[-1].split()[1]) > 1000, report[-2000:]  # it really ran
    assert not list(tmp_path.glob("crash-*"))
