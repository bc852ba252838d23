"""gevent monkey patching: done first, checked before serving.

`import blaze_green` patches the standard library (unless BLAZE_GREEN_NO_PATCH=1 or inside a
gunicorn master, whose worker patches after the fork) so handlers can be plain blocking code.
Modules imported before that keep unpatched references: we name them in a warning.
"""

from __future__ import annotations

import logging
import warnings
from typing import cast

from gevent import monkey

__all__ = ["PatchWarning", "require_patched", "is_patched", "warn_preimported"]

log = logging.getLogger("blaze_green")

CHECKED_MODULES = ("ssl", "socket", "threading")


class PatchWarning(UserWarning):
    """Modules were imported before gevent's monkey patching."""


def is_patched() -> bool:
    return cast(bool, monkey.is_module_patched("socket") and monkey.is_module_patched("threading"))


def warn_preimported(modules: tuple[str, ...]) -> None:
    if modules:
        message = (
            f"{', '.join(modules)} imported before gevent's monkey patching; objects made from "
            "them may block the whole server. Import blaze_green first, or run with "
            "`blaze-green run module:app`."
        )
        warnings.warn(message, PatchWarning, stacklevel=3)


def require_patched() -> None:
    """Refuse to serve on an unpatched standard library (like bottle's gevent adapter)."""
    if not is_patched():
        raise RuntimeError(
            "blaze_green needs gevent's monkey patching to serve: `import blaze_green` before "
            "anything else (and without BLAZE_GREEN_NO_PATCH=1), call "
            "gevent.monkey.patch_all() first, or start the app with `blaze-green run module:app`."
        )


def start_blocking_monitor(max_blocking_time: float = 0.1) -> None:
    """Debug mode: gevent's monitor thread names code blocking the hub (time.sleep, CPU loops)."""
    import gevent

    gevent.config.monitor_thread = True
    gevent.config.max_blocking_time = max_blocking_time
    hub = gevent.get_hub()
    hub.start_periodic_monitoring_thread()
    log.info(
        "debug: reporting greenlets that block the hub for more than %.0f ms",
        max_blocking_time * 1000,
    )
