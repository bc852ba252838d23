"""Real-time test app: broadcast, exclude, tasks, threads, slow consumers, shutdown.

Configured by environment variables so one module serves several tests.
"""

import os

from gevent import monkey

from blaze_green import App, Json, delay, task
from blaze_green.ws import session as session_module
from blaze_green.ws import writer_threads as writer_threads_module

QUEUE = int(os.environ.get("QUEUE", "1024"))
SHUTDOWN = float(os.environ.get("SHUTDOWN_TIMEOUT", "10"))
COALESCE = float(os.environ.get("COALESCE", "0.002"))
app = App(
    send_queue_size=QUEUE,
    shutdown_timeout=SHUTDOWN,
    ping_interval=None,
    coalesce_window=COALESCE,
    allowed_origins="*",
)

events = []  # what on_close saw, for inspection


def on_message(ws, msg):
    cmd, _, arg = msg.partition(" ")
    if cmd == "shout":
        n = app.broadcast("/feed", Json({"shout": arg}), exclude=ws)
        ws.send(Json({"shouted": n}))
    elif cmd == "ping":
        ws.send("pong")


def on_close(ws):
    events.append(ws.close_code)
    print(f"on_close ran with {ws.close_code}", flush=True)


app.ws("/feed", on_message=on_message, on_close=on_close)
app.ws("/other")


@app.get("/count")
def count(req):
    return {"n": app.connections(req.query.get("path", "/feed"))}


@app.get("/closed")
def closed(req):
    return {"codes": events}


@app.post("/broadcast")
def broadcast(req):
    """count broadcasts of {"seq": i} in a row, without yielding; returns each one's n."""
    count = int(req.query.get("count", "1"))
    size = int(req.query.get("size", "0"))
    pad = "x" * size
    return {"reached": [app.broadcast("/feed", {"seq": i, "pad": pad}) for i in range(count)]}


@app.post("/flood")
def flood(req):
    """Broadcast `count` messages of `size` bytes, pausing `pause` s every `every` messages."""
    count, size = int(req.query["count"]), int(req.query["size"])
    every, pause = int(req.query.get("every", "50")), float(req.query.get("pause", "0.001"))
    pad = "y" * size
    for i in range(count):
        app.broadcast("/feed", {"seq": i, "pad": pad})
        if i % every == every - 1:
            delay(pause)
    return {"done": count}


@app.post("/mixed")
def mixed(req):
    """Broadcast from a task, an OS thread and this handler at once, `count` each."""
    count = int(req.query.get("count", "100"))
    from gevent import monkey

    start_os_thread = monkey.get_original("_thread", "start_new_thread")  # a real OS thread
    results = {}

    def from_thread():
        try:
            results["thread"] = [
                app.broadcast("/feed", {"src": "thread", "seq": i}) for i in range(count)
            ]
        except Exception as exc:  # reported in the response
            results["thread"] = repr(exc)

    def from_task():
        out = []
        for i in range(count):
            out.append(app.broadcast("/feed", {"src": "task", "seq": i}))
            if i % 10 == 0:
                delay(0)
        results["task"] = out

    start_os_thread(from_thread, ())
    g = app.spawn(from_task)
    handler = []
    for i in range(count):
        handler.append(app.broadcast("/feed", {"src": "handler", "seq": i}))
        if i % 10 == 0:
            delay(0)
    g.join()
    while "thread" not in results:
        delay(0.01)
    results["handler"] = handler
    return results


@app.get("/rss")
def rss(req):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return {"kib": int(line.split()[1])}
    return {"kib": None}


@task
def startup_task(app):
    print(f"startup task running in pid {os.getpid()}", flush=True)
    while True:
        delay(60)


@task
def failing_task(app):
    raise ValueError("task failure for the log")


app.spawn(startup_task(app))
app.spawn(failing_task(app))


# Test-only instrumentation: count the socket writes sessions make (they write with os.write
# on the session's descriptor, from blaze_green.ws.session, or from the writer threads of a
# shared round, blaze_green.ws.writer_threads: hence a real lock around the count).
SENDS = [0]
_SENDS_LOCK = monkey.get_original("threading", "Lock")()


class _CountingOS:
    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def write(fd, data):
        with _SENDS_LOCK:
            SENDS[0] += 1
        return os.write(fd, data)


session_module.os = _CountingOS()
writer_threads_module.os = _CountingOS()


@app.get("/sends")
def sends(req):
    return {"sends": SENDS[0]}
