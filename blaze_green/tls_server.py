"""TLS handshakes on gevent's servers: a failed one is one log line, not a hub traceback.

gevent's StreamServer wraps each accepted socket in its handler greenlet; a client that fails
the handshake (plain HTTP to the TLS port, an untrusted certificate, a reset) made it print a
full traceback, and a client that never sent its ClientHello held its greenlet for good. Here
a failure is logged like any misbehaving client (clientlog), the handshake has a deadline (the
app's header_timeout),
and a plain-HTTP request gets a 400 in plain text saying to use https:// (as nginx does).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any

from .clientlog import client_error

__all__ = ["TLSHandshakeMixin"]

_PLAIN_HTTP_BODY = b'{"error":"this port serves TLS: use https:// (or wss://)","status":400}'
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_PLAIN_HTTP_BODY), _PLAIN_HTTP_BODY)
)


HANDSHAKE_TIMEOUT = 10.0  # default seconds for the client's first byte and the whole handshake
_TLS_HANDSHAKE_RECORD = b"\x16"  # every ClientHello starts with this record type


class TLSHandshakeMixin:
    """For a gevent StreamServer subclass: overrides its TLS accept path."""

    wrap_socket: Any
    ssl_args: Any
    handle: Any
    # The app's header_timeout where the server knows the app (None: no deadline).
    handshake_timeout: float | None = HANDSHAKE_TIMEOUT

    def wrap_socket_and_handle(self, client_socket: socket.socket, address: Any) -> Any:
        timeout = client_socket.gettimeout()
        client_socket.settimeout(self.handshake_timeout)
        try:
            # Peek (the handshake reads it again): a failed handshake closes the descriptor,
            # so plain HTTP must be recognised before, to be answered at all.
            first = client_socket.recv(1, socket.MSG_PEEK)
            if not first:
                return None  # closed before sending anything
            if first != _TLS_HANDSHAKE_RECORD:
                client_error(address, "plain HTTP (or not TLS) to the TLS port: answered 400")
                _answer_plain(client_socket)
                return None
            ssl_socket = self.wrap_socket(client_socket, **self.ssl_args)
        except ssl.SSLError as exc:
            client_error(address, "TLS handshake failed: %s", exc.reason or exc)
            return None
        except OSError as exc:  # a reset, or the handshake deadline (socket.timeout)
            client_error(address, "TLS handshake failed: %s", exc or type(exc).__name__)
            return None
        ssl_socket.settimeout(timeout)  # the handler sets its own timeouts from this one
        # The server closes the TLS socket when the handler returns (a WebSocket session keeps
        # it open past that: see ws/session.py).
        with ssl_socket:
            return self.handle(ssl_socket, address)


def _answer_plain(sock: socket.socket) -> None:
    """Best effort: the 400, then a short drain so closing with unread bytes does not reset
    the connection before the client has read the answer."""
    with contextlib.suppress(OSError):
        sock.settimeout(1.0)
        sock.sendall(_PLAIN_HTTP_ANSWER)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):
            pass
