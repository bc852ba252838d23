"""Bench peer: the `websockets` asyncio server (websockets >= 13 new asyncio API).

python bench/servers/websockets_asyncio.py PORT [--uvloop]
Fan-out uses websockets.asyncio.server.broadcast. Compression off, pings off, 4 MiB max_size.
"""

import asyncio
import sys

from _proto import WAIT_LIMIT_S, WAIT_POLL_S, message, padding, parse_go, port_from_argv
from websockets.asyncio.server import broadcast, serve

subscribers = set()


async def echo(ws):
    async for msg in ws:
        await ws.send(msg)  # str -> text, bytes -> binary


async def feed(ws):
    subscribers.add(ws)
    try:
        await ws.wait_closed()
    finally:
        subscribers.discard(ws)


async def control(ws):
    async for msg in ws:
        go = parse_go(msg)
        if go is None:
            continue
        n, count, size = go
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_LIMIT_S
        while len(subscribers) < n and loop.time() < deadline:
            await asyncio.sleep(WAIT_POLL_S)
        pad = padding(size)
        for i in range(count):  # in a row, no await between broadcasts
            broadcast(subscribers, message(i, pad))
        await ws.send("done")


ROUTES = {"/echo": echo, "/feed": feed, "/control": control}


async def handler(ws):
    route = ROUTES.get(ws.request.path)
    if route is None:
        await ws.close(1008, "no such path")
        return
    await route(ws)


async def main(port):
    async with serve(
        handler,
        "127.0.0.1",
        port,
        max_size=4 << 20,
        ping_interval=None,
        compression=None,
        backlog=1024,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    port = port_from_argv()
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.run(main(port))
    else:
        asyncio.run(main(port))
