"""Testing tools: run an app on a free port, in this process or a child, and talk to it.

```python
from blaze_green.testing import TestClient

def test_feed():
    with TestClient(app) as client:                 # in-process: a server thread, its own hub
        assert client.get("/hello").text == "hi"
        with client.websocket_connect("/feed") as ws:
            ws.send("ping")
            assert ws.receive(timeout=5) == "Echo: ping"
        client.app.broadcast("/feed", {"n": 1})     # from the test thread: handed to the hub

    with TestClient("myapp:app", cwd="src") as client:   # `blaze-green run` in a child process
        ...
```
With pytest, the `blaze_client` fixture (this package's pytest plugin, registered through the
`pytest11` entry point) starts clients and stops them after the test:
`client = blaze_client(app)` or `blaze_client("myapp:app", cwd=..., mode="gunicorn")`.

- `TestClient(target)`: `AppServer` for an `App`, `ServerProcess` for a "module:app" string.
- `AppServer(app)`: the embedded server in a daemon OS thread with its own gevent hub;
  handlers and tasks run on that hub, so a blocking call in a handler blocks the test server only.
- `ServerProcess("myapp:app")`: `blaze-green run` (default), `mode="gunicorn"` with our worker
  (`workers=N`) or `mode="script"`, on a free port; stopped with SIGTERM, SIGKILL past a deadline.
- `WebSocketSession`: the synchronous WebSocket client `websocket_connect` returns (own codec,
  plain socket; a reader thread answers pings); `WebSocketRejected` for a refused handshake;
  `ConnectionClosed` (also named `WebSocketClosed` here) once a session has closed.
- `free_port()`, `wait_until(predicate, timeout)`.
- `blaze_green.testing.locust`: a locust `WebSocketUser` (import it where locust is installed).

Nothing in blaze_green.testing monkey-patches the calling process, and the servers do not need
it patched. (Importing the `blaze_green` package patches, except inside pytest, in a gunicorn
master, or with BLAZE_GREEN_NO_PATCH=1.)

One module per job: `process` (ServerProcess), `appserver` (AppServer), `http` (the urllib
fallback), `websocket` (WebSocketSession), `client` (TestClient), `util` (free_port,
wait_until); this module only re-exports them.
"""

from __future__ import annotations

from ..errors import ConnectionClosed
from .appserver import AppServer
from .client import TestClient
from .http import HTTPResponse
from .process import ServerError, ServerProcess
from .util import free_port, wait_until
from .websocket import WebSocketClosed, WebSocketRejected, WebSocketSession, open_websocket

__all__ = [
    "AppServer",
    "ConnectionClosed",
    "HTTPResponse",
    "ServerError",
    "ServerProcess",
    "TestClient",
    "WebSocketClosed",
    "WebSocketRejected",
    "WebSocketSession",
    "free_port",
    "open_websocket",
    "wait_until",
]
