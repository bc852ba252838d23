"""The README's Python examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def block_with(text: str) -> str:
    matches = [b for b in python_blocks() if text in b]
    assert len(matches) == 1, f"expected one README block with {text!r}, found {len(matches)}"
    return matches[0]


def test_the_testing_example_passes_as_written(tmp_path):
    (tmp_path / "test_example.py").write_text(block_with("def test_feed(blaze_client)"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_quick_start_builds_its_routes(tmp_path):
    code = block_with("monitor_loop")
    (tmp_path / "quick.py").write_text(code, encoding="utf-8")
    check = "import quick; assert quick.app.connections('/feed') == 0; print('routes ok')"
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"BLAZE_GREEN_NO_PATCH": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "routes ok" in result.stdout
