"""blaze_green: a real-time web framework whose handlers are plain blocking functions on gevent.

Importing blaze_green monkey-patches the standard library first (see blaze_green.patching).
"""

import os as _os
import sys as _sys

# Before anything imports socket, ssl or threading through us: note what came earlier, then patch.
_PREIMPORTED = tuple(m for m in ("ssl", "socket", "threading") if m in _sys.modules)
# Not patched: on request; in a gunicorn master (each worker patches after the fork); inside a
# pytest process (test runners keep their own threads; servers under test run in child
# processes or on a thread with its own hub, see blaze_green.testing).
_SKIP_PATCH = (
    _os.environ.get("BLAZE_GREEN_NO_PATCH") == "1"
    or "gunicorn.arbiter" in _sys.modules
    or "_pytest" in _sys.modules
)

if not _SKIP_PATCH:
    from gevent import monkey as _monkey

    if not _monkey.is_module_patched("socket"):
        _monkey.patch_all()
        from .patching import warn_preimported as _warn

        _warn(_PREIMPORTED)

from .app import App  # noqa: E402
from .config import Config  # noqa: E402
from .errors import BlazeGreenError, ConnectionClosed  # noqa: E402
from .http import HTTPError, Request, Response  # noqa: E402
from .models import Json, model  # noqa: E402
from .tasks import Task, delay, task  # noqa: E402
from .ws.lifecycle import CloseCode, Initiator  # noqa: E402
from .ws.session import WebSocket, WebSocketHandlers  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "App",
    "BlazeGreenError",
    "CloseCode",
    "Config",
    "ConnectionClosed",
    "HTTPError",
    "Initiator",
    "Json",
    "Request",
    "Response",
    "Task",
    "WebSocket",
    "WebSocketHandlers",
    "delay",
    "model",
    "task",
]
