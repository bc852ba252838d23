"""Cluster test app: run several copies with BLAZE_BROKER_URL set (or not).

/feed greets each session with this process's pid; POST /broadcast sends numbered messages;
GET /count reports local and cluster counts; with SINGLETON=1 a singleton task broadcasts this
process's pid on /ticks every TICK seconds. GET /remote reports when (time.monotonic(), which
every process on one machine shares) this process delivered the messages it got from the broker.
"""

import os
import time

from blaze_green import App, delay

app = App(ping_interval=None, allowed_origins="*")
PID = os.getpid()


def on_open(ws):
    ws.send({"hello": PID})


app.ws("/feed", on_open=on_open)
app.ws("/rooms/:room", on_open=on_open)
app.ws("/ticks")


@app.post("/broadcast")
def broadcast(req):
    """count broadcasts of {"seq": i, "tag": tag, "pid": pid} in a row, without yielding."""
    count = int(req.query.get("count", "1"))
    tag = req.query.get("tag", "")
    path = req.query.get("path", "/feed")
    pad = "x" * int(req.query.get("size", "0"))  # ?size=N: N more bytes per message
    start = int(req.query.get("start", "0"))
    reached = 0
    t0 = time.monotonic()
    for i in range(start, start + count):
        msg = {"seq": i, "tag": tag, "pid": PID}
        if pad:
            msg["pad"] = pad
        reached += app.broadcast(path, msg)
    return {"reached": reached, "pid": PID, "t0": t0, "t1": time.monotonic()}


REMOTE: list[float] = []  # monotonic time of each delivery of a message from another process


@app.get("/remote")
def remote(req):
    """{"n": deliveries of remote messages, "first"/"last": their times}; ?reset=1 forgets."""
    out = {"n": len(REMOTE), "first": REMOTE[0] if REMOTE else None}
    out["last"] = REMOTE[-1] if REMOTE else None
    if req.query.get("reset"):
        REMOTE.clear()
    return out


def _timed(deliver):
    def deliver_remote(path, opcode, payload):
        REMOTE.append(time.monotonic())
        return deliver(path, opcode, payload)

    return deliver_remote


# The broker calls the runtime's deliver_remote for every message from another process.
app.runtime.deliver_remote = _timed(app.runtime.deliver_remote)


@app.get("/count")
def count(req):
    path = req.query.get("path", "/feed")
    return {
        "pid": PID,
        "local": app.connections(path),
        "cluster": app.connections(path, cluster=True),
    }


@app.get("/pid")
def pid(req):
    return {"pid": PID, "broker": app.runtime.broker is not None}


@app.get("/stats")
def stats(req):
    broker = app.runtime.broker
    if broker is None:
        return {}
    return {**broker.stats, "subscriptions": broker.metrics_snapshot()["subscriptions"]}


def ticker(interval):
    print(f"ticker running in {PID}", flush=True)
    while True:
        app.broadcast("/ticks", {"tick": PID})
        delay(interval)


if os.environ.get("SINGLETON"):
    app.spawn(ticker, float(os.environ.get("TICK", "0.2")), singleton="ticker")
