"""Bench server: blaze_green itself.

python bench/servers/blaze.py PORT
app.listen does the monkey patching. Origins open (the load generator sends no
Origin anyway), 4 MiB messages, server pings off; compression is never negotiated.
"""

import time

from _proto import WAIT_LIMIT_S, WAIT_POLL_S, message, padding, parse_go, port_from_argv

from blaze_green import App, delay

app = App(allowed_origins="*", max_message_size=4 << 20, ping_interval=None)


@app.get("/hello")
def hello(req):
    return "hi"


def echo(ws, msg):
    ws.send(msg)  # str -> text, bytes -> binary


def control(ws, msg):
    go = parse_go(msg)
    if go is None:
        return
    n, count, size = go
    deadline = time.monotonic() + WAIT_LIMIT_S
    while len(app.connections("/feed")) < n and time.monotonic() < deadline:
        delay(WAIT_POLL_S)
    pad = padding(size)
    for i in range(count):  # in a row: broadcast serializes and frames once, queues per session
        app.broadcast("/feed", message(i, pad))
    ws.send("done")


app.ws("/echo", on_message=echo)
app.ws("/feed")  # subscribers only; the server never sends on its own
app.ws("/control", on_message=control)


if __name__ == "__main__":
    app.listen(port=port_from_argv(), host="127.0.0.1")
