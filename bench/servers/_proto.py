"""Shared bits of the bench protocol (imported by every bench server).

/control receives ``go N COUNT SIZE``: wait (poll every 10 ms, up to 30 s) until N
subscribers are on /feed in this process (N = 0: do not wait; the cluster scenario sends
``go 0 ...`` once every subscriber of every worker is connected), then do COUNT
broadcasts in a row, each a text message of about SIZE bytes
``{"seq":I,"ts":T,"pad":"xxx"}`` with T = time.time() at that broadcast, then reply
``done``.

``go N COUNT SIZE ticker`` (the permessage-deflate scenarios; blaze.py and
websockets_asyncio.py only, ``parse_go_kind``) broadcasts JSON ticker batches instead:
``{"seq":I,"ts":T,"type":"ticker","exchange":"coinbase","data":[{"product_id":...,
"price":...,"best_bid":...,"best_ask":...,"side":...,"time":...},...]}`` of at most SIZE
bytes, every message different (prices walk, times advance), so that it compresses like a
real feed (~70% smaller, deflated on its own) and a compressor that keeps its context
between messages gains what it would on one. The bodies are generated once per process
(``warm_ticker`` at start-up) and only seq and ts are filled in per broadcast.
"""

import sys
import time

WAIT_POLL_S = 0.01
WAIT_LIMIT_S = 30.0
_BASE = len('{"seq":0,"ts":1700000000.000000,"pad":""}')


def parse_go(msg):
    """Return (n, count, size) for a ``go N COUNT SIZE`` message, else None."""
    go = parse_go_kind(msg)
    return go[:3] if go is not None and go[3] == "pad" else None


def parse_go_kind(msg):
    """(n, count, size, kind) for ``go N COUNT SIZE [ticker]`` (kind "pad" or "ticker")."""
    if isinstance(msg, bytes | bytearray):
        msg = bytes(msg).decode()
    parts = msg.split()
    if len(parts) not in (4, 5) or parts[0] != "go":
        return None
    kind = parts[4] if len(parts) == 5 else "pad"
    if kind not in ("pad", "ticker"):
        return None
    return int(parts[1]), int(parts[2]), int(parts[3]), kind


def padding(size):
    return "x" * max(0, size - _BASE)


def message(seq, pad):
    return f'{{"seq":{seq},"ts":{time.time():.6f},"pad":"{pad}"}}'


_SYMBOLS = (
    ("BTC-USD", 64000.0),
    ("ETH-USD", 3400.0),
    ("SOL-USD", 145.0),
    ("XRP-USD", 0.52),
    ("ADA-USD", 0.45),
    ("DOGE-USD", 0.12),
    ("AVAX-USD", 35.0),
    ("LINK-USD", 14.5),
    ("DOT-USD", 6.8),
    ("LTC-USD", 82.0),
    ("BCH-USD", 480.0),
    ("UNI-USD", 9.6),
)
_TICKER_HEAD = len('{"seq":0,"ts":1700000000.000000')
_TICKER_OPEN = ',"type":"ticker","exchange":"coinbase","data":['
_ticker_cache: dict[int, list[str]] = {}


def _price(p):
    return f"{p:.2f}" if p >= 10 else f"{p:.4f}"


def ticker_bodies(count, size):
    """The first COUNT ticker batch bodies of at most SIZE bytes (with the seq/ts head), each
    the part after ``{"seq":I,"ts":T``: the same deterministic sequence in every server."""
    bodies = _ticker_cache.setdefault(size, [])
    if len(bodies) >= count:
        return bodies[:count]
    import random

    rng = random.Random(7 + size)  # the whole sequence again: it is deterministic
    prices = [p for _, p in _SYMBOLS]
    t_ms = 0
    bodies.clear()
    for _ in range(count):
        t_ms += rng.randint(5, 50)
        clock = f"2025-12-02T09:{t_ms // 60000 % 60:02d}:{t_ms // 1000 % 60:02d}.{t_ms % 1000:03d}Z"
        total = _TICKER_HEAD + len(_TICKER_OPEN) + 2
        entries = []
        k = rng.randrange(len(_SYMBOLS))
        while True:
            j = k % len(_SYMBOLS)
            k += 1
            prices[j] *= 1 + rng.uniform(-0.0005, 0.0005)
            p = prices[j]
            tick = 0.01 if p >= 10 else 0.0001
            entry = (
                f'{{"product_id":"{_SYMBOLS[j][0]}","price":"{_price(p)}",'
                f'"best_bid":"{_price(p - tick)}","best_ask":"{_price(p + tick)}",'
                f'"side":"{rng.choice(("buy", "sell"))}","time":"{clock}"}}'
            )
            if entries and total + len(entry) + 1 > size or len(entries) == len(_SYMBOLS):
                break
            total += len(entry) + (1 if entries else 0)
            entries.append(entry)
        bodies.append(_TICKER_OPEN + ",".join(entries) + "]}")
    return bodies[:count]


def warm_ticker(count=200, size=1024):
    """Generate the ticker bodies at start-up (a few ms), outside any measured window."""
    ticker_bodies(count, size)


def messages(kind, count, size):
    """A function seq -> message text for ``go N COUNT SIZE KIND``: the padded one of the
    plain protocol, or a ticker batch; ts is time.time() when it is called."""
    if kind == "ticker":
        bodies = ticker_bodies(count, size)
        return lambda i: f'{{"seq":{i},"ts":{time.time():.6f}' + bodies[i]
    pad = padding(size)
    return lambda i: message(i, pad)


def port_from_argv():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(f"usage: python {sys.argv[0]} PORT")
    return int(args[0])


def serve_pywsgi_nodelay(app, handler_base=None, server_class=None):
    """Serve `app` on gevent.pywsgi (or `server_class`) with TCP_NODELAY on every connection.

    pywsgi writes headers and body in separate sends; with Nagle on, a keep-alive client waits
    for a delayed ACK, so NODELAY is the fair setting for every pywsgi-based peer.
    """
    import socket

    from gevent.pywsgi import WSGIHandler, WSGIServer

    class NoDelayHandler(handler_base or WSGIHandler):
        def handle(self):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle()

    server = (server_class or WSGIServer)(
        ("127.0.0.1", port_from_argv()), app, handler_class=NoDelayHandler, log=None, backlog=1024
    )
    server.serve_forever()
