"""`ServerProcess`: a blaze_green app in a child process (`blaze-green run`, gunicorn, a script)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from ..errors import BlazeGreenError
from .util import wait_until

__all__ = ["ServerError", "ServerProcess"]

_LISTENING = re.compile(r"(?:listening on |Listening at: )(https?)://([\d.]+|\[[^\]]+\]):(\d+)")
_WORKER_READY = re.compile(r"blaze_green worker \d+ serving")


class ServerError(BlazeGreenError, RuntimeError):
    """The server process did not start, or died; the message carries its output."""


class ServerProcess:
    """A blaze_green app in a child process: `blaze-green run` (default) or gunicorn."""

    def __init__(
        self,
        target: str,
        *,
        mode: str = "run",
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
        workers: int = 1,
        worker_class: str = "blaze_green.worker.GeventWebSocketWorker",
        host: str = "127.0.0.1",
        ready_timeout: float = 30.0,
    ) -> None:
        self.target = target
        self.mode = mode
        self.cwd = str(cwd) if cwd is not None else os.getcwd()
        self.extra_env = dict(env or {})
        self.args = list(args)
        self.workers = workers
        self.worker_class = worker_class
        self.host = host
        self.ready_timeout = ready_timeout
        self.port: int | None = None
        self.scheme = "http"  # "https" once the server says it listens with TLS
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The command line the child runs, by `mode` (run, gunicorn, script)."""
        if self.mode == "run":
            return [
                sys.executable,
                "-m",
                "blaze_green",
                "run",
                self.target,
                "--host",
                self.host,
                "--port",
                "0",
                *self.args,
            ]
        if self.mode == "gunicorn":
            return [
                sys.executable,
                "-m",
                "gunicorn",
                "-k",
                self.worker_class,
                "--bind",
                f"{self.host}:0",
                "--workers",
                str(self.workers),
                "--graceful-timeout",
                "20",
                *self.args,
                self.target,
            ]
        if self.mode == "script":
            return [sys.executable, self.target, *self.args]
        raise ValueError(f"mode must be 'run', 'gunicorn' or 'script', not {self.mode!r}")

    def env(self) -> dict[str, str]:
        """The child's environment: this one, unbuffered, patching on, plus `env`."""
        env = dict(os.environ)
        env.pop("BLAZE_GREEN_NO_PATCH", None)  # the child is a server: it must patch
        env["PYTHONUNBUFFERED"] = "1"
        pythonpath = [self.cwd] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(pythonpath)
        env.update(self.extra_env)
        return env

    def start(self) -> ServerProcess:
        """Start the child and wait until it accepts connections (ServerError if it exits first)."""
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.cwd,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        need_workers = self.workers if self.mode == "gunicorn" else 0
        while time.monotonic() < deadline:
            text = self.output
            match = _LISTENING.search(text)
            if match and len(_WORKER_READY.findall(text)) >= need_workers:
                self.scheme = match.group(1)
                self.port = int(match.group(3))
                return
            if self.proc is not None and self.proc.poll() is not None:
                time.sleep(0.05)
                raise ServerError(
                    f"server exited with {self.proc.returncode} before it was ready:\n{self.output}"
                )
            time.sleep(0.02)
        raise ServerError(f"server not ready after {self.ready_timeout}s:\n{self.output}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Signal the server and wait for it; SIGKILL past `timeout`. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        if proc.stdout is not None and not self._reader_alive():
            proc.stdout.close()
        return proc.returncode

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- talking to it --------------------------------------------------------------------

    @property
    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        with self._lock:
            return "\n".join(self._lines)

    def wait_for_output(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the child's output matches `pattern` (a regex) and return the match."""
        regex = re.compile(pattern)
        return cast(
            "re.Match[str]",
            wait_until(lambda: regex.search(self.output), timeout, what=f"output {pattern!r}"),
        )

    @property
    def url(self) -> str:
        """`http://host:port` (`https://` when the server speaks TLS) of the child server."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        """`ws://host:port` + `path` (`wss://` when the server speaks TLS)."""
        ws = "wss" if self.scheme == "https" else "ws"
        return f"{ws}://{self.host}:{self.port}{path}"

    @property
    def pid(self) -> int | None:
        """The child's process id, None before `start()`."""
        return self.proc.pid if self.proc else None
