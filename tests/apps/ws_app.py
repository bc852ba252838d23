"""The WebSocket test application (tests/test_ws_*.py), configured by environment variables.

Read at import, so one module serves many tests:
    PING, PING_TIMEOUT    ping_interval / ping_timeout in seconds ("0" or unset: None)
    MAX_MSG               max_message_size in bytes (unset: the default, 1 MiB)
    MAX_BODY              max_body_size in bytes (unset: the default)
    MAX_CONN              max_connections (unset: None)
    SEND_QUEUE            send_queue_size (unset: the default)
    SEND_QUEUE_BYTES      send_queue_bytes (unset: the default)
    MAX_FRAGMENTS         max_fragments ("none": None; unset: the default)
    CLOSE_TIMEOUT         close_timeout in seconds (unset: the default)
    ORIGINS               unset: same origin; "*"; "callable" (origins ending in ".good.example");
                          else a comma-separated list
    APP_BEFORE_OPEN       "1": an app-wide before_open (refuses `X-Deny: 1` with 403, records
                          its turn in the environ and returns {"app": True})

Routes:
    ws /echo       echoes text and binary; text starting with "!" is a command (see `command`)
    ws /auth       before_open: ?token=good -> user_data {"user": "alice", "order": [...]};
                   no token -> HTTPError(401); other tokens -> HTTPError(403)
    ws /boom       before_open raises ValueError (-> 500)
    ws /openboom   on_open raises RuntimeError (-> 1011)
    ws /proto      subprotocols=["v2", "v1"]; the first message sent is the selected one
    ws /feed       echoes (for query strings on the URL)
    GET /count?path=/echo    app.connections(path)
    POST /upload             the body's length (for max_body_size)

Every session gets a number (sid) in on_open; on_open and on_close print one line each to
stdout ("ws-app open sid=N path=P", "ws-app close sid=N code=C reason=R"), so tests can count
them in the server output, even after the server has stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import os

import gevent

from blaze_green import App, HTTPError, Json

_sids = itertools.count(1)


def _env_float(name: str) -> float | None:
    return float(os.environ.get(name, "0")) or None


def _origins():
    value = os.environ.get("ORIGINS")
    if value is None:
        return None
    if value == "*":
        return "*"
    if value == "callable":
        return lambda origin, req: origin.endswith(".good.example")
    return [o.strip() for o in value.split(",") if o.strip()]


def _app_before_open(req):
    if req.headers.get("X-Deny") == "1":
        raise HTTPError(403, "denied by the app-wide hook")
    req.environ["ws_app.order"] = ["app"]
    return {"app": True}


config: dict = {
    "ping_interval": _env_float("PING"),
    "ping_timeout": _env_float("PING_TIMEOUT"),
    "allowed_origins": _origins(),
}
for _name, _key, _cast in (
    ("MAX_MSG", "max_message_size", int),
    ("MAX_BODY", "max_body_size", int),
    ("MAX_CONN", "max_connections", int),
    ("SEND_QUEUE", "send_queue_size", int),
    ("SEND_QUEUE_BYTES", "send_queue_bytes", int),
    ("MAX_FRAGMENTS", "max_fragments", lambda v: None if v == "none" else int(v)),
    ("CLOSE_TIMEOUT", "close_timeout", float),
):
    if _name in os.environ:
        config[_key] = _cast(os.environ[_name])

app = App(
    before_open=_app_before_open if os.environ.get("APP_BEFORE_OPEN") == "1" else None, **config
)


def _say(line: str) -> None:
    print(f"ws-app {line}", flush=True)


def on_open(ws):
    ws.sid = next(_sids)
    _say(f"open sid={ws.sid} path={ws.path}")


def on_close(ws):
    sid = getattr(ws, "sid", None)
    _say(f"close sid={sid} code={ws.close_code} reason={ws.close_reason}")
    by = ws.close_initiator.value if ws.close_initiator else None
    _say(f"ended sid={sid} by={by}")


def _sender(ws, tag: str, count: int, yield_every: int = 10) -> None:
    """Send `tag:0` ... `tag:count-1`, yielding to other greenlets every few messages."""
    for i in range(count):
        ws.send(f"{tag}:{i}")
        if i % yield_every == yield_every - 1:
            gevent.sleep(0)


def _flood(ws, size: int) -> None:
    """Send `size`-byte messages until the session closes (a slow-consumer test)."""
    chunk = b"x" * size
    while not ws.closed:
        try:
            ws.send(chunk)
        except Exception:
            return
        gevent.sleep(0)


def _broadcaster(ws, size: int, count: int) -> None:
    chunk = b"b" * size
    handed = 0
    for _ in range(count):
        handed += app.broadcast(ws.path, chunk, exclude=ws)
        gevent.sleep(0)
    ws.send(f"broadcast done handed={handed}")


def command(ws, text: str) -> None:
    name, _, arg = text[1:].partition(" ")
    if name == "whoami":
        ws.send(
            {
                "sid": ws.sid,
                "path": ws.path,
                "subprotocol": ws.subprotocol,
                "remote_addr": ws.remote_addr,
                "closed": ws.closed,
                "query": ws.environ.get("QUERY_STRING"),
            }
        )
    elif name == "pid":  # which process (gunicorn worker) holds this session
        ws.send(str(os.getpid()))
    elif name == "user":
        ws.send(Json(ws.user_data))
    elif name == "close":
        code, _, reason = arg.partition(" ")
        ws.close(int(code), reason)
    elif name == "raise":
        raise RuntimeError(f"on_message failed on purpose: {arg}")
    elif name == "burst":
        # Three senders on one session at once: a plain greenlet, an app task, this handler.
        n = int(arg)
        gevent.spawn(_sender, ws, "g", n)
        app.spawn(_sender, ws, "t", n)
        _sender(ws, "h", n)
    elif name == "bigrace":
        # A 4 MiB binary message racing small text messages from two other greenlets.
        n = int(arg)
        big = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(131072))
        gevent.spawn(_sender, ws, "g", n, 2)
        app.spawn(_sender, ws, "t", n, 2)
        _sender(ws, "h", n // 2, 2)
        ws.send(f"sha:{hashlib.sha256(big).hexdigest()}")
        ws.send(big)
        _sender(ws, "h2", n // 2, 2)
    elif name == "flood":
        app.spawn(_flood, ws, int(arg))
    elif name == "broadcast":
        # `!broadcast SIZE COUNT`: COUNT broadcasts of SIZE bytes to every other /echo session
        size, _, n = arg.partition(" ")
        app.spawn(_broadcaster, ws, int(size), int(n))
    else:
        ws.send(f"unknown command {name}")


def on_message(ws, msg):
    if isinstance(msg, str) and msg.startswith("!"):
        command(ws, msg)
    else:
        ws.send(msg)


def echo_message(ws, msg):
    ws.send(msg)


def auth_before_open(req):
    token = req.query.get("token")
    if token is None:
        raise HTTPError(401, "a token is required")
    if token != "good":
        raise HTTPError(403, f"token {token} is not valid")
    order = req.environ.get("ws_app.order", [])
    return {"user": "alice", "order": [*order, "route"]}


def boom_before_open(req):
    raise ValueError("before_open failed on purpose")


def boom_open(ws):
    on_open(ws)
    raise RuntimeError("on_open failed on purpose")


def proto_open(ws):
    on_open(ws)
    ws.send(f"subprotocol={ws.subprotocol}")


app.ws("/echo", on_open=on_open, on_message=on_message, on_close=on_close)
app.ws(
    "/auth",
    on_open=on_open,
    on_message=on_message,
    on_close=on_close,
    before_open=auth_before_open,
)
app.ws("/boom", on_open=on_open, on_message=echo_message, before_open=boom_before_open)
app.ws(
    "/proto",
    on_open=proto_open,
    on_message=echo_message,
    on_close=on_close,
    subprotocols=["v2", "v1"],
)
app.ws("/openboom", on_open=boom_open, on_message=echo_message, on_close=on_close)
app.ws("/feed", on_open=on_open, on_message=on_message, on_close=on_close)


@app.get("/count")
def count(req):
    return {"count": app.connections(req.query.get("path", "/echo"))}


@app.post("/upload")
def upload(req):
    return {"length": len(req.environ["wsgi.input"].read())}
