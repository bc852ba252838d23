"""An app for the metrics tests: /feed (echo, !flood), /chat/:room, /stats, /metrics.

SEND_QUEUE sets send_queue_size (for the overflow scenario); origins are same-origin.
"""

import os

import gevent

from blaze_green import App

app = App(
    send_queue_size=int(os.environ.get("SEND_QUEUE", "1024")),
    close_timeout=float(os.environ.get("CLOSE_TIMEOUT", "5")),
    ping_interval=None,
)


def flood(ws):
    chunk = b"x" * 65536
    while not ws.closed:
        try:
            ws.send(chunk)
        except Exception:
            return
        gevent.sleep(0)


def on_message(ws, msg):
    if msg == "!flood":
        app.spawn(flood, ws)
    else:
        ws.send(msg)


app.ws("/feed", on_message=on_message)
app.ws("/chat/:room", on_message=lambda ws, msg: app.broadcast(ws.path, msg))
app.metrics_route("/metrics")


@app.get("/stats")
def stats(req):
    return app.stats()


@app.get("/pid")
def pid(req):
    return {"pid": os.getpid()}


@app.post("/broadcast")
def broadcast(req):
    return {"n": app.broadcast(req.query["path"], req.query.get("text", "hi"))}


@app.get("/local")
def local(req):
    return {"pid": os.getpid(), "open": app.connections("/feed")}
