"""Bench peer: Flask-SocketIO on gevent (async_mode="gevent", websocket transport only).

python bench/servers/flask_socketio_gevent.py PORT
gunicorn -k geventwebsocket.gunicorn.workers.GeventWebSocketWorker -w 2 flask_socketio_gevent:app
    (cluster: BENCH_SIO_MESSAGE_QUEUE=redis://... makes it use Flask-SocketIO's Redis queue)
(Not named flask_socketio.py: the script's directory comes first on sys.path, and the file
would shadow the flask_socketio package it imports.)

Socket.IO is its own protocol on top of WebSocket, so the load generator speaks it (`loadgen
-s`): clients connect to /socket.io/?EIO=4&transport=websocket&role=ROLE and to the default
namespace. The bench protocol in Socket.IO terms:

- echo: an "echo" event is emitted back to its sender with the same data;
- subscribers (role=feed) join the room "feed"; the "go" event with "go N COUNT SIZE" waits for
  N of them in this process (N=0: no wait), then emits COUNT "msg" events to the room in a row,
  each {"seq":I,"ts":T,"pad":"xxx"} (a JSON object, so the payload is not re-escaped), then
  emits "done" to the sender.

Engine.IO pings every hour (they cannot be turned off), 4 MiB max message, TCP_NODELAY on
accepted sockets, no access log; served by gevent-websocket's handler on gevent.pywsgi, as
Flask-SocketIO's own socketio.run() does in gevent mode.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import time  # noqa: E402

from _proto import (  # noqa: E402
    WAIT_LIMIT_S,
    WAIT_POLL_S,
    padding,
    parse_go,
    serve_pywsgi_nodelay,
)
from flask import Flask, request  # noqa: E402
from flask_socketio import SocketIO, emit, join_room  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

app = Flask(__name__)
socketio = SocketIO(
    app,
    async_mode="gevent",
    transports=["websocket"],
    cors_allowed_origins="*",
    ping_interval=3600,
    ping_timeout=3600,
    max_http_buffer_size=4 << 20,
    message_queue=os.environ.get("BENCH_SIO_MESSAGE_QUEUE") or None,
)
local_subscribers = [0]  # sessions in the "feed" room in this process


@socketio.on("connect")
def on_connect(auth=None):
    if request.args.get("role") == "feed":
        join_room("feed")
        local_subscribers[0] += 1


@socketio.on("disconnect")
def on_disconnect(*args):
    if request.args.get("role") == "feed":
        local_subscribers[0] -= 1


@socketio.on("echo")
def on_echo(data):
    emit("echo", data)


@socketio.on("go")
def on_go(data):
    go = parse_go(data)
    if go is None:
        return
    n, count, size = go
    deadline = time.monotonic() + WAIT_LIMIT_S
    while n and local_subscribers[0] < n and time.monotonic() < deadline:
        socketio.sleep(WAIT_POLL_S)
    pad = padding(size)
    for i in range(count):  # in a row: each emit encodes once and queues per session
        socketio.emit("msg", {"seq": i, "ts": round(time.time(), 6), "pad": pad}, to="feed")
    emit("done")


if __name__ == "__main__":
    serve_pywsgi_nodelay(app, handler_base=WebSocketHandler)
