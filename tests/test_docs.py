"""The documentation site builds with warnings as errors, every Python block in it runs, and
every public name has a docstring for the API reference."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
RUNNER = Path(__file__).parent / "docs_runner.py"
sys.path.insert(0, str(Path(__file__).parent))
from docs_runner import blocks  # noqa: E402

PAGES = sorted(
    p for p in (ROOT / "docs").rglob("*.md") if blocks(p.read_text(encoding="utf-8"))
) + [ROOT / "README.md"]


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # the API reference was generated from the docstrings, not left empty
    reference = (tmp_path / "reference" / "app" / "index.html").read_text(encoding="utf-8")
    assert "broadcast" in reference and "serialized once" in reference


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_of_the_page_runs(page):
    env = dict(os.environ, BLAZE_GREEN_NO_PATCH="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(page)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": ok" in result.stdout


def public_names() -> list[tuple[str, object]]:
    import blaze_green
    import blaze_green.testing

    found = []
    for module in (blaze_green, blaze_green.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            found.append((f"{module.__name__}.{name}", obj))
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if member.startswith("_"):
                        continue
                    if isinstance(value, property):
                        value = value.fget
                    if inspect.isfunction(value):
                        found.append((f"{module.__name__}.{name}.{member}", value))
    return found


def test_every_public_name_has_a_docstring():
    missing = [name for name, obj in public_names() if not inspect.getdoc(obj)]
    assert not missing, f"no docstring (the API reference shows them bare): {missing}"
