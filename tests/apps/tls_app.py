"""TLS tests: /hello, /echo (up to 8 MiB), /feed for broadcasts, /flood, and /page for a browser.

`blaze-green run tls_app:app --certfile C --keyfile K` and gunicorn load `tls_app:app`; as a
script, `python tls_app.py PORT CERTFILE KEYFILE` serves with app.listen(certfile=, keyfile=).
COMPRESSION=off builds the app without permessage-deflate; QUEUE sets send_queue_size,
HEADER_TIMEOUT header_timeout (which bounds the TLS handshake too).
"""

import hashlib
import os
import sys

import gevent

from blaze_green import App, Response

app = App(
    compression=None if os.environ.get("COMPRESSION") == "off" else "deflate",
    max_message_size=8 << 20,
    ping_interval=None,
    header_timeout=float(os.environ.get("HEADER_TIMEOUT", "10")),
    send_queue_size=int(os.environ.get("QUEUE", "100000")),
    # the 64 MiB flood test queues more than the default 16 MiB byte bound while the
    # client catches up; the overflow test sets QUEUE instead
    send_queue_bytes=int(os.environ.get("QUEUE_BYTES", str(256 << 20))),
)


def on_close(ws):
    print(f"tls-app close path={ws.path} code={ws.close_code}", flush=True)


def echo(ws, msg):
    ws.send(msg)


def flood(ws, msg):
    """`count:size`: that many binary messages of `size` bytes, each its index repeated, then
    a text message with the sha256 of them all."""
    count, size = (int(x) for x in msg.split(":"))
    digest = hashlib.sha256()
    for i in range(count):
        chunk = bytes([i % 256]) * size
        digest.update(chunk)
        ws.send(chunk)
        gevent.sleep(0)  # let the hub write: the queue then holds only what the socket refuses
    ws.send(digest.hexdigest())


app.ws("/echo", on_message=echo, on_close=on_close)
app.ws("/feed", on_close=on_close)
app.ws("/flood", on_message=flood, on_close=on_close)


@app.get("/hello")
def hello(req):
    return {"hello": "tls", "scheme": req.environ["wsgi.url_scheme"]}


@app.get("/count")
def count(req):
    return {"n": app.connections(req.query.get("path", "/feed"))}


@app.post("/broadcast")
def broadcast(req):
    return {"reached": app.broadcast("/feed", req.query.get("text", "news"))}


@app.get("/rss")
def rss(req):
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS:"))
    return {"kb": int(line.split()[1])}


PAGE = """<!doctype html><title>tls</title><pre id="log"></pre><script>
const log = (s) => { document.getElementById("log").textContent += s + "\\n"; };
const ws = new WebSocket("wss://" + location.host + "/echo");
ws.onopen = () => { log("open " + ws.extensions); ws.send("hello over wss"); };
ws.onmessage = (e) => { log("got " + e.data); document.title = "echoed"; };
ws.onclose = (e) => log("closed " + e.code);
</script>"""


@app.get("/page")
def page(req):
    return Response(PAGE, content_type="text/html; charset=utf-8")


if __name__ == "__main__":
    app.listen(port=int(sys.argv[1]), host="127.0.0.1", certfile=sys.argv[2], keyfile=sys.argv[3])
