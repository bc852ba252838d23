"""The feed example as a cluster: gunicorn -w 4 behind one Redis (see README.md here).

    redis-server --port 6379 --save '' --appendonly no
    BLAZE_BROKER_URL=redis://127.0.0.1:6379/0 gunicorn -k blaze_green.worker.GeventWebSocketWorker \
        app:app --workers 4 --bind 127.0.0.1:8080         # from examples/cluster/

Every worker serves its own WebSocket sessions; a broadcast in any worker reaches the sessions
of all four (through Redis, serialized once). The ticker and the heartbeat are singletons: one
worker runs each at a time, so clients get one tick a second, not four. GET /stats shows which
worker answered and how many clients the whole cluster holds.
"""

# ruff: noqa: I001 - blaze_green comes first: importing it monkey-patches the standard library.
from blaze_green import App, Json, delay, model, task

import logging
import os
import random
from dataclasses import dataclass

log = logging.getLogger("feed")
app = App()  # the broker comes from BLAZE_BROKER_URL (or App(broker="redis://..."))


@model
@dataclass
class Update:
    type: str
    value: float


def on_open(ws):
    log.info("Client connected to feed (worker %d)", os.getpid())


def on_message(ws, msg):
    ws.send("Echo: " + msg if isinstance(msg, str) else msg)


app.ws("/feed", on_open=on_open, on_message=on_message)
app.ws("/heartbeat")


@task
def ticker(app):
    log.info("ticker runs in worker %d", os.getpid())
    price = 89500.50
    while True:
        price = round(price + random.uniform(-25, 25), 2)
        app.broadcast("/feed", Update("ticker", price))  # every session in every worker
        delay(1)


@task
def monitor_loop(app):
    while True:
        app.broadcast("/heartbeat", Json({"status": "alive"}))
        delay(1)


# One worker of the cluster runs each; if it dies another takes over within 15 s.
app.spawn(ticker(app), singleton="ticker")
app.spawn(monitor_loop(app), singleton="heartbeat")


@app.get("/stats")
def stats(req):
    return {
        "worker": os.getpid(),
        "feed_here": app.connections("/feed"),
        "feed_cluster": app.connections("/feed", cluster=True),  # at most 5 s old
    }


PAGE = """<!doctype html>
<meta charset="utf-8"><title>blaze_green cluster feed</title>
<style>body{font:16px system-ui;margin:2em} #price{font-size:3em} #beat,#stats{color:#888}</style>
<h1>BTC ticker</h1><div id="price">…</div><div id="beat">waiting for heartbeat</div>
<div id="stats"></div>
<script>
const url = (p) => (location.protocol === "https:" ? "wss://" : "ws://") + location.host + p;
const feed = new WebSocket(url("/feed"));
feed.onmessage = (e) => {
  if (e.data.startsWith("Echo: ")) return;
  document.getElementById("price").textContent = JSON.parse(e.data).value.toFixed(2);
};
const beat = new WebSocket(url("/heartbeat"));
beat.onmessage = (e) => {
  document.getElementById("beat").textContent = JSON.parse(e.data).status + " " +
    new Date().toLocaleTimeString();
};
setInterval(async () => {
  const s = await (await fetch("/stats")).json();
  document.getElementById("stats").textContent =
    `worker ${s.worker}: ${s.feed_here} here, ${s.feed_cluster} in the cluster`;
}, 2000);
</script>
"""


@app.get("/")
def index(req):
    return PAGE


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.listen(port=int(os.environ.get("PORT", "8080")), host=os.environ.get("HOST", "127.0.0.1"))
