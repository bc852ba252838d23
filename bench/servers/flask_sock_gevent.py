"""Bench peer: Flask + flask-sock (simple-websocket, wsproto) on gevent.pywsgi, monkey-patched.

python bench/servers/flask_sock_gevent.py PORT
(Not named flask_sock.py: the script's directory comes first on sys.path, and the file would
shadow the flask_sock package it imports.)
Fan-out loops ws.send(msg) over a list of the /feed sockets. TCP_NODELAY on accepted sockets,
no access log, server pings off, 4 MiB max message, reads of 64 KiB (simple-websocket's
default is 4 KiB, which would make it slower on big messages than it needs to be).
Every connection costs two greenlets: the route's, and simple-websocket's reader "thread".
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
from flask import Flask  # noqa: E402
from flask_sock import Sock  # noqa: E402

app = Flask(__name__)
app.config["SOCK_SERVER_OPTIONS"] = {
    "ping_interval": None,
    "max_message_size": 4 << 20,
    "receive_bytes": 65536,
}
sock = Sock(app)
subscribers = []


@sock.route("/echo")
def echo(ws):
    while True:
        ws.send(ws.receive())  # str -> text, bytes -> binary; ConnectionClosed ends the route


@sock.route("/feed")
def feed(ws):
    subscribers.append(ws)
    try:
        while True:
            ws.receive()
    finally:
        subscribers.remove(ws)


@sock.route("/control")
def control(ws):
    while True:
        go = parse_go(ws.receive())
        if go is None:
            continue
        n, count, size = go
        deadline = time.monotonic() + WAIT_LIMIT_S
        while n and len(subscribers) < n and time.monotonic() < deadline:
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


if __name__ == "__main__":
    serve_pywsgi_nodelay(app)
