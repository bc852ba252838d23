"""The Blaze seed in Python: a /feed echo, a ticker broadcasting an `Update` model every second,
and a /heartbeat task broadcasting `Json`. Open http://127.0.0.1:8080/ to watch it.

    python examples/feed.py                      # embedded server, port 8080 (PORT overrides)
    blaze-green run feed:app --port 8080         # from examples/
    gunicorn -k blaze_green.worker.GeventWebSocketWorker feed:app --bind 127.0.0.1:8080
"""

# ruff: noqa: I001 - blaze_green comes first: importing it monkey-patches the standard library.
from blaze_green import App, Json, delay, model, task

import logging
import os
from pathlib import Path
import random
import time
from dataclasses import dataclass

log = logging.getLogger("feed")
app = App()
app.static("/static", Path(__file__).parent / "static")  # the page's script


@model
@dataclass
class Update:
    type: str
    value: float


def on_open(ws):
    log.info("Client connected to feed")


def on_message(ws, msg):
    ws.send("Echo: " + msg if isinstance(msg, str) else msg)


def on_close(ws):
    log.info("Client disconnected")


app.ws("/feed", on_open=on_open, on_message=on_message, on_close=on_close)
app.ws("/heartbeat")


@task
def ticker(app):
    price = 89500.50
    while True:
        price = round(price + random.uniform(-25, 25), 2)
        app.broadcast("/feed", Update("ticker", price))  # serialized once for every client
        delay(1)


@task
def monitor_loop(app):
    while True:
        app.broadcast("/heartbeat", Json({"status": "alive"}))
        delay(1)  # waits without blocking anyone


app.spawn(ticker(app))
app.spawn(monitor_loop(app))

# For load tests (loadtests/locustfile.py): a numbered tick with the server's clock, 10 times a
# second, so clients can measure push latency (now - ts) and spot lost messages (seq gaps).
app.ws("/ticks")


@task
def ticks(app):
    seq = 0
    while True:
        seq += 1
        app.broadcast("/ticks", Json({"seq": seq, "ts": time.time()}))
        delay(0.1)


app.spawn(ticks(app), singleton="ticks")  # one numbering even for a cluster with a broker

PAGE = """<!doctype html>
<meta charset="utf-8"><title>blaze_green feed</title>
<style>body{font:16px system-ui;margin:2em} #price{font-size:3em} #beat{color:#888}</style>
<h1>BTC ticker</h1><div id="price">…</div><div id="beat">waiting for heartbeat</div>
<p><input id="say" placeholder="say something"> <span id="echo"></span></p>
<script src="/static/feed.js"></script>
"""


@app.get("/")
def index(req):
    return PAGE


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.listen(port=int(os.environ.get("PORT", "8080")), host=os.environ.get("HOST", "127.0.0.1"))
