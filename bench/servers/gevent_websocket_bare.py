"""Bench peer: bare gevent-websocket (WebSocketServer + a plain WSGI app).

python bench/servers/gevent_websocket_bare.py PORT
Fan-out loops ws.send(msg) over a list of sockets. TCP_NODELAY is set on accepted
sockets (as asyncio and the framework do) so Nagle/delayed-ACK stalls don't skew it.
"""

from gevent import monkey

monkey.patch_all()

import time  # noqa: E402

import gevent  # noqa: E402
from _proto import (  # noqa: E402
    WAIT_LIMIT_S,
    WAIT_POLL_S,
    message,
    padding,
    parse_go,
    serve_pywsgi_nodelay,
)
from geventwebsocket import WebSocketServer  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

subscribers = []


def echo(ws):
    while True:
        msg = ws.receive()  # str for text, bytearray for binary, None on close
        if msg is None:
            return
        ws.send(msg, binary=not isinstance(msg, str))


def feed(ws):
    subscribers.append(ws)
    try:
        while ws.receive() is not None:
            pass
    finally:
        subscribers.remove(ws)


def control(ws):
    while True:
        msg = ws.receive()
        if msg is None:
            return
        go = parse_go(msg)
        if go is None:
            continue
        n, count, size = go
        deadline = time.monotonic() + WAIT_LIMIT_S
        while len(subscribers) < n and time.monotonic() < deadline:
            gevent.sleep(WAIT_POLL_S)
        pad = padding(size)
        for i in range(count):  # in a row, no explicit yield between broadcasts
            msg = message(i, pad)
            for sub in list(subscribers):
                try:  # noqa: SIM105 (a context manager per send would slow the hot loop)
                    sub.send(msg)
                except Exception:
                    pass
        ws.send("done")


ROUTES = {"/echo": echo, "/feed": feed, "/control": control}


def app(environ, start_response):
    ws = environ.get("wsgi.websocket")
    route = ROUTES.get(environ["PATH_INFO"])
    if ws is None or route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    route(ws)
    return []


if __name__ == "__main__":
    serve_pywsgi_nodelay(app, handler_base=WebSocketHandler, server_class=WebSocketServer)
