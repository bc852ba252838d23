"""Many-rooms bench server (bench/rooms.py): one process of a cluster, BLAZE_BROKER_URL set.

/rooms/:room: members only; POST /pub?count=M&size=S with a body of room names, one a line:
M broadcasts of S bytes to each of those rooms, in a row; GET /stats: this process's broker
counters and its local rooms. Only public API plus `app.runtime.broker.stats` (a Counter in
every tree that has a broker), so that an older checkout (one shared channel) runs it too.
"""

import os

from blaze_green import App

app = App(ping_interval=None, allowed_origins="*")
app.ws("/rooms/:room")


@app.post("/pub")
def pub(req):
    count = int(req.query.get("count", "1"))
    body = "x" * int(req.query.get("size", "100"))
    rooms = [r for r in req.text.split("\n") if r]
    reached = 0
    for _ in range(count):
        for room in rooms:
            reached += app.broadcast(f"/rooms/{room}", body)
    return {"reached": reached, "published": count * len(rooms)}


@app.get("/stats")
def stats(req):
    broker = app.runtime.broker
    counters = dict(broker.stats) if broker is not None else {}
    if broker is not None:  # a Redis Cluster broker sums its shards' counters here
        snap = broker.metrics_snapshot()
        counters.update(
            {k: snap[k] for k in ("published", "received", "ignored", "own") if k in snap}
        )
    return {"pid": os.getpid(), "broker": counters}
