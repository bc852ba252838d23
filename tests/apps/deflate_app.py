"""permessage-deflate tests: /echo (text and binary, up to 8 MiB), /feed for broadcasts.

COMPRESSION=off builds the app with compression=None; MAX_MSG sets max_message_size.
"""

import os

from blaze_green import App

app = App(
    compression=None if os.environ.get("COMPRESSION") == "off" else "deflate",
    max_message_size=int(os.environ.get("MAX_MSG", str(8 << 20))),
    ping_interval=None,
)


def on_close(ws):
    print(
        f"deflate-app close path={ws.path} code={ws.close_code} reason={ws.close_reason}",
        flush=True,
    )


app.ws("/echo", on_message=lambda ws, msg: ws.send(msg), on_close=on_close)
app.ws("/feed", on_close=on_close)


@app.get("/count")
def count(req):
    return {"n": app.connections(req.query.get("path", "/feed"))}


@app.post("/broadcast")
def broadcast(req):
    """count broadcasts of a ~600-byte JSON ticker in a row: {"seq": i, ...}."""
    n = int(req.query.get("count", "1"))
    entries = [{"symbol": f"S{k}", "price": 100.0 + k, "volume": 1000 * k} for k in range(12)]
    return {"reached": [app.broadcast("/feed", {"seq": i, "ticks": entries}) for i in range(n)]}


@app.get("/rss")
def rss(req):
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS:"))
    return {"kb": int(line.split()[1])}
