"""pytest plugin for blaze_green apps, registered as `blaze_green` (entry point `pytest11`).

```python
from myapp import app

def test_hello(blaze_client):
    client = blaze_client(app)                      # in this process, on a free port
    assert client.get("/hello").text == "hi"
    with client.websocket_connect("/feed") as ws:
        ws.send("ping")
        assert ws.receive() == "Echo: ping"

def test_in_a_child_process(blaze_client):
    client = blaze_client("myapp:app", cwd="src")   # blaze-green run; mode="gunicorn" too
```
`blaze_client(target, **kwargs)` builds a started `blaze_green.testing.TestClient`; every client
the test started is stopped at teardown (open WebSocket sessions closed, server shut down).

This module imports only pytest (blaze_green.testing is imported when the fixture is first
used). Loading it imports the `blaze_green` package, which never monkey-patches a pytest
process; the servers do not need it (AppServer runs on a hub of its own, ServerProcess's child
patches itself). Disable the plugin with `-p no:blaze_green`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def blaze_client() -> Iterator[Callable[..., Any]]:
    """Factory: `blaze_client(app_or_"module:app", **kwargs)` → a started TestClient."""
    from blaze_green.testing import TestClient

    started: list[Any] = []

    def start(target: Any, **kwargs: Any) -> Any:
        client = TestClient(target, **kwargs)
        client.start()
        started.append(client)
        return client

    yield start
    errors = []
    for client in reversed(started):
        try:
            client.stop()
        except Exception as exc:  # stop them all, then report
            errors.append(exc)
    if errors:
        raise errors[0]
