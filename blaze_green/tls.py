"""The embedded server's TLS context: `app.listen(certfile=, keyfile=)` and `--certfile/--keyfile`.

Checked before the server binds, so a missing or unreadable file is reported by name instead of
as an OpenSSL error from the first handshake.
"""

from __future__ import annotations

import os
import ssl

from .errors import BlazeGreenError

__all__ = ["TLSConfigError", "server_context"]


class TLSConfigError(BlazeGreenError, ValueError):
    """The certificate or key cannot be used; the message names the file and what to do."""


def _check_readable(kind: str, path: str) -> None:
    if not os.path.exists(path):
        raise TLSConfigError(f"{kind} {path!r} does not exist: pass the path of a PEM file")
    if os.path.isdir(path):
        raise TLSConfigError(f"{kind} {path!r} is a directory, not a PEM file")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise TLSConfigError(
            f"{kind} {path!r} cannot be read ({exc.strerror}): check its permissions"
        ) from None


def server_context(
    certfile: str | os.PathLike[str] | None,
    keyfile: str | os.PathLike[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ssl.SSLContext | None:
    """The server's SSLContext: `ssl_context` as given, or one loaded from `certfile` (PEM
    certificate chain) and `keyfile` (PEM key; omitted when it is in `certfile`). None: plain."""
    if ssl_context is not None:
        if certfile is not None or keyfile is not None:
            raise TLSConfigError("pass either ssl_context or certfile/keyfile, not both")
        return ssl_context
    if certfile is None:
        if keyfile is not None:
            raise TLSConfigError("keyfile given without certfile: pass both (PEM files)")
        return None
    cert = os.fspath(certfile)
    key = os.fspath(keyfile) if keyfile is not None else None
    _check_readable("certfile", cert)
    if key is not None:
        _check_readable("keyfile", key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # A session writes from the hub and reads on its greenlet; a renegotiation would make a
    # write wait for a read (see ws/session.py). Never needed: refuse it.
    context.options |= ssl.OP_NO_RENEGOTIATION
    try:
        # An empty password: an encrypted key fails here instead of prompting on the terminal.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        where = f"certfile {cert!r}" + (f" and keyfile {key!r}" if key else "")
        raise TLSConfigError(
            f"cannot load a certificate and key from {where} ({exc.reason or exc}): they must "
            "be PEM files, the key matching the certificate (and not encrypted)"
        ) from None
    return context
