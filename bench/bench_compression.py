"""Where permessage-deflate stops paying: bytes saved and CPU per message, by message size.

python bench/bench_compression.py

Messages are JSON ticker updates (as a feed sends) grown to each size with more entries, and
a heartbeat. For each size: the frame size plain and compressed with blaze_green's shared
compressor (full flush per message, no context), the compress and inflate time per message.
The threshold (App's compression_threshold) is set where the saving is small against the
frame header and the CPU: see docs/compression.md.
"""

from __future__ import annotations

import json
import random
import time
import zlib

from blaze_green.ws.extensions import MessageInflater
from blaze_green.ws.outgoing import SharedCompressor


def ticker(size: int, rng: random.Random) -> bytes:
    entries = []
    text = b""
    while True:
        entries.append(
            {
                "type": "ticker",
                "symbol": rng.choice(["BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD"]),
                "price": round(rng.uniform(10, 90000), 2),
                "volume": rng.randint(1, 10**6),
                "ts": 1764633600000 + rng.randint(0, 10**6),
            }
        )
        candidate = json.dumps(entries if len(entries) > 1 else entries[0]).encode()
        if len(candidate) > size:
            return text or candidate[:size]
        text = candidate


def per_call(fn, arg, rounds: int = 2000) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn(arg)
    return (time.perf_counter() - start) / rounds


def main() -> None:
    rng = random.Random(7)
    compressor = SharedCompressor(level=6)
    print("| message | plain B | deflated B | saved | compress µs | inflate µs |")
    print("|---|---:|---:|---:|---:|---:|")
    samples = [("heartbeat", b'{"status":"alive"}')]
    samples += [
        (f"ticker ~{n} B", ticker(n, rng)) for n in (32, 64, 96, 128, 192, 256, 512, 1024, 4096)
    ]
    for name, payload in samples:
        deflated = compressor.compress(payload)
        assert zlib.decompressobj(-15).decompress(deflated + b"\x00\x00\xff\xff") == payload

        def inflate(data: bytes) -> bytes:
            return MessageInflater(None).inflate(data, final=True)

        c_us = per_call(compressor.compress, payload) * 1e6
        i_us = per_call(inflate, deflated) * 1e6
        saved = 1 - len(deflated) / len(payload)
        print(
            f"| {name} | {len(payload)} | {len(deflated)} | {saved:.0%} | {c_us:.1f} | {i_us:.1f} |"
        )


if __name__ == "__main__":
    main()
