"""The server of `python -m bench.hostile`: blaze_green with its default limits.

python bench/hostile_app.py PORT      (app.listen patches; PORT 0: a free one, in its log line)

Env: HOSTILE_PING (ping_interval s, "0": off; default 5), HOSTILE_PING_TIMEOUT (default 20, as
App), HOSTILE_SHUTDOWN (shutdown_timeout s, default App's; likewise HOSTILE_WRITE_THREADS,
HOSTILE_SEND_QUEUE_BYTES and HOSTILE_CLOSE_TIMEOUT), HOSTILE_SPACING (s between the
broadcasts of one `go`, default 0.5), HOSTILE_LOOP_HZ (a broadcast loop on /feed at this rate,
0: none), HOSTILE_LOOP_SIZE (its message size, default 100), HOSTILE_CLOSES_FILE (where the
on_close count is written at exit). A broker comes from BLAZE_BROKER_URL, as for any App.

- ws /echo echoes; ws /feed only receives (the loop's and the `go` broadcasts).
- ws /control: ``go N COUNT SIZE`` (bench/servers/_proto.py's protocol: wait for N sessions on
  /feed, then COUNT broadcasts of ~SIZE bytes ``{"seq":I,"ts":T,"pad":...}``), here spaced
  HOSTILE_SPACING apart instead of in a row, then ``done``.
- GET /stats: RSS (KiB), open fds, sessions on /echo and /feed, on_open/on_close counts, the
  loop's next seq, the max event-loop lag (ms) since the last ``?reset=1``, garbage-collector
  pauses per generation (``gc``: since start; ``gc_go``: during the last ``go``, until its
  first session closed), and
  `app.stats()`. ``?young=S``: also how many objects created over the next S seconds are still
  alive at their end (``young_objects``; the collector is off meanwhile).

The lag monitor is a greenlet that sleeps 10 ms in a loop and records how late it woke: the
longest time the hub was blocked (by a hung broker, a CPU loop) plus its scheduling delay.
At exit (after SIGTERM's shutdown) the on_close count is printed and written to the file.
"""

import gc
import os
import sys
import time

from blaze_green import App, delay


def _seconds(name: str, default: float) -> float | None:
    value = float(os.environ.get(name, default))
    return value or None


options = {}
if os.environ.get("HOSTILE_SHUTDOWN"):
    options["shutdown_timeout"] = float(os.environ["HOSTILE_SHUTDOWN"])
for _name, _key, _cast in (
    ("HOSTILE_WRITE_THREADS", "write_threads", int),
    ("HOSTILE_SEND_QUEUE_BYTES", "send_queue_bytes", int),
    ("HOSTILE_CLOSE_TIMEOUT", "close_timeout", float),
):
    if os.environ.get(_name):
        options[_key] = _cast(os.environ[_name])
app = App(
    allowed_origins="*",
    ping_interval=_seconds("HOSTILE_PING", 5.0),
    ping_timeout=_seconds("HOSTILE_PING_TIMEOUT", 20.0),
    **options,
)
SPACING = float(os.environ.get("HOSTILE_SPACING", "0.5"))
LOOP_HZ = float(os.environ.get("HOSTILE_LOOP_HZ", "0"))
LOOP_SIZE = int(os.environ.get("HOSTILE_LOOP_SIZE", "100"))
TICK = 0.01
counts = {"opens": 0, "closes": 0}
lag = {"max_ms": 0.0, "samples": 0}
loop = {"seq": 0}
# Garbage-collector pauses, per generation: collections, total and longest (ms).
gc_pauses = {g: {"n": 0, "ms": 0.0, "max_ms": 0.0} for g in (0, 1, 2)}
_gc_start = [0.0]


def _gc_timer(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_start[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _gc_start[0]) * 1000
    entry = gc_pauses[info["generation"]]
    entry["n"] += 1
    entry["ms"] += ms
    entry["max_ms"] = max(entry["max_ms"], ms)


gc.callbacks.append(_gc_timer)
gc_go: dict = {}  # the collections of the last `go` (its broadcasts and their writes)
go_started: dict = {}  # gc_pauses when the running `go` started (empty: none runs)


def _rounded(pauses: dict) -> dict:
    return {g: {k: round(v, 2) for k, v in e.items()} for g, e in pauses.items()}


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def message(seq: int, size: int) -> str:
    head = f'{{"seq":{seq},"ts":{time.time():.6f},"pad":"'
    return head + "x" * max(0, size - len(head) - 2) + '"}'


@app.get("/stats")
def stats(req):
    out = {
        "rss_kib": rss_kib(),
        "fds": len(os.listdir("/proc/self/fd")),
        "sessions": app.connections("/echo"),
        "feed": app.connections("/feed"),
        **counts,
        "loop_seq": loop["seq"],
        "lag_max_ms": round(lag["max_ms"], 2),
        "lag_samples": lag["samples"],
        "gc": _rounded(gc_pauses),
        "gc_go": _rounded(gc_go),
        "stats": app.stats(),
    }
    if req.query.get("young"):
        # Objects created over YOUNG seconds and still alive at its end (the collector off
        # meanwhile, so that none ages out of generation 0 and escapes the count): what each
        # idle session's heartbeats leave for the collector to age into its oldest generation.
        gc.collect()
        gc.disable()
        try:
            delay(float(req.query["young"]))
            out["young_objects"] = len(gc.get_objects(0))
        finally:
            gc.enable()
    if req.query.get("reset"):
        lag["max_ms"], lag["samples"] = 0.0, 0
    return out


def opened(ws):
    counts["opens"] += 1


def closed(ws):
    counts["closes"] += 1
    if go_started:  # the clients leave once they have every message: their teardown's own
        _end_gc_go()  # collections are not the broadcasts'


def control(ws, msg):
    parts = str(msg).split()
    if len(parts) != 4 or parts[0] != "go":
        ws.close(1003, "expected: go N COUNT SIZE")
        return
    n, count, size = (int(p) for p in parts[1:])
    deadline = time.monotonic() + 30
    while app.connections("/feed") < n and time.monotonic() < deadline:
        delay(0.01)
    go_started.update({g: dict(e) for g, e in gc_pauses.items()})
    gc_go.clear()
    for i in range(count):
        if i:
            delay(SPACING)
        app.broadcast("/feed", message(i, size))
    delay(SPACING)  # the last broadcast's writes
    _end_gc_go()
    ws.send("done")


def _end_gc_go() -> None:
    for g, e in gc_pauses.items():
        gc_go[g] = {"n": e["n"] - go_started[g]["n"], "ms": e["ms"] - go_started[g]["ms"]}
    go_started.clear()


def lag_monitor():
    while True:
        start = time.monotonic()
        delay(TICK)
        late = (time.monotonic() - start - TICK) * 1000
        lag["samples"] += 1
        if late > lag["max_ms"]:
            lag["max_ms"] = late


def broadcast_loop():
    # Paced by the clock, not by sleeps, so a slow round does not lower the rate.
    start = time.monotonic()
    while True:
        app.broadcast("/feed", message(loop["seq"], LOOP_SIZE))
        loop["seq"] += 1
        wait = start + loop["seq"] / LOOP_HZ - time.monotonic()
        delay(max(0.0, wait))


app.ws("/echo", on_message=lambda ws, msg: ws.send(msg), on_open=opened, on_close=closed)
app.ws("/feed", on_open=opened, on_close=closed)
app.ws("/control", on_message=control)
app.spawn(lag_monitor)
if LOOP_HZ > 0:
    app.spawn(broadcast_loop)


def main() -> None:
    app.listen(port=int(sys.argv[1]), host="127.0.0.1")
    # listen() returns once the shutdown is over: every session's on_close has run.
    print(f"hostile-app exit: on_open {counts['opens']} on_close {counts['closes']}", flush=True)
    path = os.environ.get("HOSTILE_CLOSES_FILE")
    if path:
        with open(path, "w") as out:
            out.write(f"{counts['opens']} {counts['closes']}\n")


if __name__ == "__main__":
    main()
