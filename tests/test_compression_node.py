"""permessage-deflate with Node.js's `ws` package (perMessageDeflate on) as the client."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node() -> str:
    binary = shutil.which("node")
    if binary is None:
        pytest.skip("needs Node.js (apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        npm = shutil.which("npm")
        assert npm, "Node.js is here but npm is not: cannot install the ws package"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
        )
    return binary


def test_node_ws_client_with_per_message_deflate(serve, node):
    server = serve("deflate_app:app")
    result = subprocess.run(
        [node, str(NODE_DIR / "deflate_client.js"), server.ws_url("/echo")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == []
    assert "permessage-deflate" in report["extensions"]
    assert len(report["echoed"]) == 8 and all(e["ok"] for e in report["echoed"]), report
    assert report["fragmented"] is True
    assert report["close"] == 1000
