"""Shared fixtures. The pytest process itself is never monkey-patched: servers run in child
processes (blaze_green.testing.ServerProcess), which patch on their own."""

import os

os.environ["BLAZE_GREEN_NO_PATCH"] = "1"  # must precede any blaze_green import in this process

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from blaze_green.testing import ServerProcess  # noqa: E402

APPS = Path(__file__).parent / "apps"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def serve():
    """serve("module:app", mode=..., **kw): a server from tests/apps, stopped after the test."""
    started: list[ServerProcess] = []

    def start(target: str, **kwargs) -> ServerProcess:
        kwargs.setdefault("cwd", APPS)
        server = ServerProcess(target, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
