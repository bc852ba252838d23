"""Bench peer: Starlette WebSocket routes on uvicorn (its `websockets` protocol, uvloop).

python bench/servers/starlette_uvicorn.py PORT
uvicorn with ws="websockets" (the websockets library's protocol inside uvicorn), loop="uvloop"
(uvicorn's "auto" picks uvloop when it is installed; named here so the run says what it used),
per-message deflate off, server pings off, 4 MiB max message, no access log, backlog 1024,
one process. Fan-out: for each message, `await ws.send_text(msg)` to each subscriber in turn
(a plain loop; asyncio.gather would create one task per subscriber per message, 1,000,000
tasks at N=5000, and be slower). Each send only awaits a drain when the socket's write buffer
is over its high-water mark, so the loop rarely yields.
"""

import asyncio
import time

import uvicorn
from _proto import WAIT_LIMIT_S, WAIT_POLL_S, message, padding, parse_go, port_from_argv
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

subscribers: list[WebSocket] = []


async def echo(ws: WebSocket):
    await ws.accept()
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is not None:
                await ws.send_text(msg["text"])
            else:
                await ws.send_bytes(msg["bytes"])
    except WebSocketDisconnect:
        pass


async def feed(ws: WebSocket):
    await ws.accept()
    subscribers.append(ws)
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
    finally:
        subscribers.remove(ws)


async def control(ws: WebSocket):
    await ws.accept()
    try:
        while True:
            go = parse_go(await ws.receive_text())
            if go is None:
                continue
            n, count, size = go
            deadline = time.monotonic() + WAIT_LIMIT_S
            while n and len(subscribers) < n and time.monotonic() < deadline:
                await asyncio.sleep(WAIT_POLL_S)
            pad = padding(size)
            for i in range(count):  # in a row
                msg = message(i, pad)
                for sub in list(subscribers):
                    try:  # noqa: SIM105 (a context manager per send would slow the hot loop)
                        await sub.send_text(msg)
                    except Exception:
                        pass
            await ws.send_text("done")
    except WebSocketDisconnect:
        pass


app = Starlette(
    routes=[
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/feed", feed),
        WebSocketRoute("/control", control),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port_from_argv(),
        ws="websockets",
        loop="uvloop",
        ws_max_size=4 << 20,
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        access_log=False,
        log_level="warning",
        lifespan="off",
        backlog=1024,
    )
