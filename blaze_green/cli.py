"""`blaze-green run MODULE:APP`: the embedded server from the command line.

The package import (which this module's import triggers) has already monkey-patched the
standard library before the application module is imported.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import socket
import sys
from typing import Any

from .app import App
from .reload import ReloadError
from .tls import TLSConfigError, server_context

__all__ = ["main", "load_app"]

log = logging.getLogger("blaze_green")


class AppLoadError(Exception):
    pass


def load_app(spec: str) -> App:
    """Import `module:attr` (attr defaults to `app`) with the current directory on sys.path."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise AppLoadError(f"expected MODULE:APP, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise AppLoadError(
                f"cannot import {module_name!r} from {cwd}: run from the directory that holds it "
                "or use a dotted module path"
            ) from None
        raise
    try:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise AppLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if inspect.isfunction(obj) and not inspect.signature(obj).parameters:
        obj = obj()  # an application factory: create_app()
    if not isinstance(obj, App):
        raise AppLoadError(f"{spec} is {type(obj).__name__}, not a blaze_green.App")
    return obj


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blaze-green", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve MODULE:APP on the embedded gevent server")
    run.add_argument("app", help="the application, as module:attribute (default attribute: app)")
    run.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=8080, help="port to bind (default 8080; 0: any)")
    run.add_argument("--access-log", action="store_true", help="log every request (INFO)")
    run.add_argument(
        "--debug", action="store_true", help="debug logging and gevent's hub-blocking monitor"
    )
    run.add_argument("--log-level", default=None, help="blaze_green log level (default INFO)")
    run.add_argument("--certfile", default=None, help="TLS certificate (PEM): serve https, wss")
    run.add_argument("--keyfile", default=None, help="TLS private key (PEM), with --certfile")
    run.add_argument(
        "--reload",
        action="store_true",
        help="development: restart when a .py file changes (sessions get 1012); needs watchfiles",
    )
    # --reload's child serves on the supervisor's listening socket, passed by descriptor.
    run.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .server import serve

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    level = args.log_level or ("DEBUG" if args.debug else "INFO")
    logging.getLogger("blaze_green").setLevel(level.upper())
    try:
        # The files are checked before the app is imported: a typo costs no import time.
        context = server_context(args.certfile, args.keyfile)
        if args.reload:
            from .reload import supervise

            scheme = "https" if context is not None else "http"
            raw = sys.argv[1:] if argv is None else list(argv)
            return supervise(args.app, raw, args.host, args.port, scheme)
        app = load_app(args.app)
    except (AppLoadError, TLSConfigError, ReloadError) as exc:
        print(f"blaze-green: {exc}", file=sys.stderr)
        return 2
    listener = None
    if args.fd is not None:
        listener = socket.socket(fileno=args.fd)
    serve(
        app,
        host=args.host,
        port=args.port,
        access_log_enabled=args.access_log,
        debug=args.debug,
        certfile=args.certfile,
        keyfile=args.keyfile,
        listener=listener,
    )
    return 0
