"""Shared bits of the bench protocol (imported by every bench server).

/control receives ``go N COUNT SIZE``: wait (poll every 10 ms, up to 30 s) until N
subscribers are on /feed in this process (N = 0: do not wait; the cluster scenario sends
``go 0 ...`` once every subscriber of every worker is connected), then do COUNT
broadcasts in a row, each a text message of about SIZE bytes
``{"seq":I,"ts":T,"pad":"xxx"}`` with T = time.time() at that broadcast, then reply
``done``.
"""

import sys
import time

WAIT_POLL_S = 0.01
WAIT_LIMIT_S = 30.0
_BASE = len('{"seq":0,"ts":1700000000.000000,"pad":""}')


def parse_go(msg):
    """Return (n, count, size) for a ``go N COUNT SIZE`` message, else None."""
    if isinstance(msg, bytes | bytearray):
        msg = bytes(msg).decode()
    parts = msg.split()
    if len(parts) != 4 or parts[0] != "go":
        return None
    return int(parts[1]), int(parts[2]), int(parts[3])


def padding(size):
    return "x" * max(0, size - _BASE)


def message(seq, pad):
    return f'{{"seq":{seq},"ts":{time.time():.6f},"pad":"{pad}"}}'


def port_from_argv():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(f"usage: python {sys.argv[0]} PORT")
    return int(args[0])


def serve_pywsgi_nodelay(app, handler_base=None, server_class=None):
    """Serve `app` on gevent.pywsgi (or `server_class`) with TCP_NODELAY on every connection.

    pywsgi writes headers and body in separate sends; with Nagle on, a keep-alive client waits
    for a delayed ACK, so NODELAY is the fair setting for every pywsgi-based peer.
    """
    import socket

    from gevent.pywsgi import WSGIHandler, WSGIServer

    class NoDelayHandler(handler_base or WSGIHandler):
        def handle(self):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle()

    server = (server_class or WSGIServer)(
        ("127.0.0.1", port_from_argv()), app, handler_class=NoDelayHandler, log=None, backlog=1024
    )
    server.serve_forever()
