"""Blaze's chat room: the page at / and the /chat room, where joins, messages and leaves are
broadcast to everyone in the room.

    python examples/chat.py            # then open http://127.0.0.1:8080/ in two browser tabs
"""

# ruff: noqa: I001 - blaze_green comes first: importing it monkey-patches the standard library.
from blaze_green import App, HTTPError, Json

import logging
import os
from pathlib import Path

app = App()
app.static("/static", Path(__file__).parent / "static")  # the page's script
MAX_TEXT = 2000


def check_name(req):
    """Runs before the upgrade: a bad name is refused with 400, a good one becomes ws.user_data."""
    name = req.query.get("name", "").strip()
    if not 1 <= len(name) <= 32:
        raise HTTPError(400, "pick a name of 1 to 32 characters: /chat?name=alice")
    return name


def on_open(ws):
    app.broadcast(
        "/chat",
        Json({"type": "join", "name": ws.user_data, "count": app.connections("/chat")}),
    )


def on_message(ws, msg):
    if not isinstance(msg, str) or not msg.strip():
        return
    app.broadcast("/chat", Json({"type": "message", "name": ws.user_data, "text": msg[:MAX_TEXT]}))


def on_close(ws):
    app.broadcast(
        "/chat",
        Json({"type": "leave", "name": ws.user_data, "count": app.connections("/chat")}),
    )


app.ws("/chat", on_open=on_open, on_message=on_message, on_close=on_close, before_open=check_name)

PAGE = """<!doctype html>
<meta charset="utf-8"><title>blaze_green chat</title>
<style>
 body{font:15px system-ui;margin:2em;max-width:40em}
 #log{border:1px solid #ccc;height:20em;overflow-y:auto;padding:.5em;margin:.5em 0}
 .sys{color:#888} .msg b{margin-right:.4em}
</style>
<h1>Chat</h1>
<form id="join"><input id="name" placeholder="your name" maxlength="32" required>
<button>Join</button></form>
<div id="room" hidden>
 <div id="log"></div>
 <form id="send"><input id="text" placeholder="message" autocomplete="off" size="40">
 <button>Send</button></form>
</div>
<script src="/static/chat.js"></script>
"""


@app.get("/")
def index(req):
    return PAGE


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.listen(port=int(os.environ.get("PORT", "8080")), host=os.environ.get("HOST", "127.0.0.1"))
