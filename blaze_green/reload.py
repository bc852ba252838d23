"""`blaze-green run MODULE:APP --reload`: a supervisor that restarts the server on code changes.

The supervisor never imports the application. It binds the listening socket itself (so the port,
even `--port 0`'s, stays the same across restarts and connections made during a restart wait in
the backlog), runs `blaze-green run` as a child process on that socket, and watches the project's
.py files with watchfiles. On a change it sends the child SIGHUP, which closes every session with
1012 (service restart: browsers reconnect) and exits, then starts a new child. A child that dies
(a syntax error, an import error: its traceback is on stderr) is not restarted until the next
change. SIGINT/SIGTERM stop the child gracefully, then the supervisor, exit 0.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ReloadError", "Supervisor", "watch_dirs"]

log = logging.getLogger("blaze_green.reload")

DEBOUNCE_MS = 300  # watchfiles groups the writes of one save (an editor writes several times)
STOP_TIMEOUT = 30.0  # a child that has not exited this long after its signal is killed


class ReloadError(Exception):
    """--reload cannot start (watchfiles missing, the app module not found)."""


def watch_dirs(app_spec: str, cwd: str) -> list[Path]:
    """The directories to watch: `cwd` and the app module's directory (when elsewhere), found
    without importing the module (a syntax error must not stop the supervisor)."""
    module_name = app_spec.partition(":")[0]
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    except Exception as exc:  # a parent package that does not import (a syntax error)
        log.warning("cannot locate %s (%s): watching %s only", module_name, exc, cwd)
        return [Path(cwd).resolve()]
    if spec is None:
        raise ReloadError(
            f"cannot find module {module_name!r} from {cwd}: run from the directory that holds "
            "it or use a dotted module path"
        )
    dirs = [Path(cwd).resolve()]
    origin = spec.origin if spec.has_location else None
    if origin:
        module_dir = Path(origin).resolve().parent
        if not any(module_dir == d or d in module_dir.parents for d in dirs):
            dirs.append(module_dir)
    return dirs


def _describe(changes: Iterable[tuple[Any, str]], root: Path) -> str:
    names = []
    for _, path in sorted(changes, key=lambda c: c[1]):
        p = Path(path)
        try:
            names.append(str(p.relative_to(root)))
        except ValueError:
            names.append(str(p))
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


class Supervisor:
    """Runs `child_args` (a `blaze-green run` command line without --reload) as a child on a
    socket bound here, restarting it on changes under `dirs`."""

    def __init__(
        self,
        child_args: Sequence[str],
        dirs: Sequence[Path],
        host: str,
        port: int,
        scheme: str = "http",
    ) -> None:
        try:
            import watchfiles
        except ImportError:
            raise ReloadError(
                "--reload needs watchfiles: pip install 'blaze-green[reload]'"
            ) from None
        self._watchfiles = watchfiles
        self.child_args = list(child_args)
        self.dirs = list(dirs)
        self.scheme = scheme
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise ReloadError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.sock.listen(2048)
        self.sock.set_inheritable(True)
        self.host, self.port = self.sock.getsockname()[:2]

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            log.info(
                "blaze_green listening on %s://%s:%s (reloading on changes under %s)",
                self.scheme,
                self.host,
                self.port,
                ", ".join(str(d) for d in self.dirs),
            )
            self._start_child()
            self._watch()
        finally:
            self._stop_child(signal.SIGTERM)
            self.sock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("reloader stopped")
        return 0

    def _on_signal(self, sig: int, frame: Any) -> None:
        log.info("received %s: stopping the server and the reloader", signal.Signals(sig).name)
        self._stop.set()

    def _watch(self) -> None:
        root = self.dirs[0]
        watcher = self._watchfiles.watch(
            *self.dirs,
            watch_filter=self._watchfiles.PythonFilter(),
            debounce=DEBOUNCE_MS,
            step=50,
            stop_event=self._stop,
            rust_timeout=500,  # wake up now and then to notice a child that died
            yield_on_timeout=True,
            raise_interrupt=False,
        )
        reported_exit = False
        for changes in watcher:
            if self._stop.is_set():
                return
            if changes:
                log.info("changed: %s; restarting", _describe(changes, root))
                self._stop_child(signal.SIGHUP)
                self._start_child()
                reported_exit = False
                continue
            child = self._child
            if child is not None and child.poll() is not None and not reported_exit:
                reported_exit = True
                log.error(
                    "the server exited with code %s (its error is above); waiting for a change "
                    "to restart it",
                    child.returncode,
                )

    def _start_child(self) -> None:
        fd = self.sock.fileno()
        self._child = subprocess.Popen(
            [*self.child_args, "--fd", str(fd)], pass_fds=(fd,), stdin=subprocess.DEVNULL
        )
        log.info("server started (pid %d)", self._child.pid)

    def _stop_child(self, sig: int) -> None:
        """Signal the child (SIGHUP: restart, sessions get 1012; SIGTERM: stop, 1001) and wait
        for it; SIGKILL past STOP_TIMEOUT."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            child.send_signal(sig)
            deadline = time.monotonic() + STOP_TIMEOUT
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if child.poll() is None:
                log.warning("server pid %d did not exit in %.0f s: killed", child.pid, STOP_TIMEOUT)
                child.kill()
                child.wait()


def child_command(argv: Sequence[str]) -> list[str]:
    """This process's `blaze-green run` command line without --reload (for the child)."""
    return [sys.executable, "-m", "blaze_green", *[a for a in argv if a != "--reload"]]


def supervise(app_spec: str, argv: Sequence[str], host: str, port: int, scheme: str) -> int:
    """`--reload`: run the server under a Supervisor until SIGINT/SIGTERM."""
    dirs = watch_dirs(app_spec, os.getcwd())
    return Supervisor(child_command(argv), dirs, host, port, scheme).run()
