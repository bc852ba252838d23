"""Bench peer: the `websockets` asyncio server (websockets >= 13 new asyncio API).

python bench/servers/websockets_asyncio.py PORT [--uvloop]
Fan-out uses websockets.asyncio.server.broadcast. Pings off, 4 MiB max_size.

Compression off (`compression=None`) unless BENCH_WS_COMPRESSION=deflate (the server
websockets_deflate): then serve() gets no compression argument, i.e. the library's default
permessage-deflate (server_max_window_bits=12, client_max_window_bits=12, memLevel 5,
context takeover on both sides, so one compressor and one decompressor per connection, and
broadcast() compresses every message once per connection).
"""

import asyncio
import os
import sys

from _proto import (
    WAIT_LIMIT_S,
    WAIT_POLL_S,
    messages,
    parse_go_kind,
    port_from_argv,
    warm_ticker,
)
from websockets.asyncio.server import broadcast, serve

COMPRESSION = os.environ.get("BENCH_WS_COMPRESSION", "off")
if COMPRESSION not in ("off", "deflate"):
    sys.exit(f"websockets_asyncio.py: BENCH_WS_COMPRESSION={COMPRESSION!r}: off or deflate")
# the library's default is permessage-deflate: pass nothing to get exactly that
OPTIONS = {} if COMPRESSION == "deflate" else {"compression": None}
print(f"websockets_asyncio.py: compression {COMPRESSION}", file=sys.stderr, flush=True)
warm_ticker()  # the ticker bodies of `go ... ticker`, generated before any measurement

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
        go = parse_go_kind(msg)
        if go is None:
            continue
        n, count, size, kind = go
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_LIMIT_S
        while len(subscribers) < n and loop.time() < deadline:
            await asyncio.sleep(WAIT_POLL_S)
        make = messages(kind, count, size)
        for i in range(count):  # in a row, no await between broadcasts
            broadcast(subscribers, make(i))
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
        backlog=1024,
        **OPTIONS,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    port = port_from_argv()
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.run(main(port))
    else:
        asyncio.run(main(port))
