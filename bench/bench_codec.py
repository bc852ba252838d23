"""Micro-benchmark: parse throughput of blaze_green.ws.frames vs websockets and wsproto.

Run as ``python bench/bench_codec.py``. Every workload is client-to-server traffic (masked, a
fresh random mask per frame, as browsers send it) fed in 64 KiB pieces, as socket reads would
deliver it. Each cell is the best of several timed runs; the whole script takes well under a
minute. Prints a markdown table to stdout.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The codec is pure; skip blaze_green's gevent monkey-patching so only parsing is measured.
os.environ.setdefault("BLAZE_GREEN_NO_PATCH", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websockets  # noqa: E402
import wsproto  # noqa: E402
from websockets.frames import Frame, Opcode  # noqa: E402
from websockets.protocol import SERVER, Protocol  # noqa: E402
from websockets.streams import StreamReader  # noqa: E402
from wsproto.frame_protocol import FrameProtocol  # noqa: E402
from wsproto.frame_protocol import Opcode as WsprotoOpcode  # noqa: E402

from blaze_green.ws.frames import OP_BINARY, OP_TEXT, FrameParser, apply_mask, encode_frame  # noqa: E402

PIECE = 64 * 1024
MIB = 1 << 20
SMALL_COUNT = 20_000
ROUNDS = 12
REPEATS = (3, 3, 1, 1)  # runs per round of each workload (1 MiB ones are quick)


def chunks(stream: bytes) -> list[bytes]:
    return [stream[i : i + PIECE] for i in range(0, len(stream), PIECE)]


# Parsers: each takes the stream's pieces and returns the number of complete messages (so that
# every contender demonstrably did the whole job; text is decoded to str by all of them).


def parse_blaze(pieces: list[bytes]) -> int:
    parser = FrameParser(max_message_size=None)
    count = 0
    for piece in pieces:
        count += len(parser.feed(piece))
    return count


def parse_websockets_frame(pieces: list[bytes]) -> int:
    # Frame.parse is a generator-based coroutine pulling from a StreamReader; drive it by hand.
    reader = StreamReader()
    count = 0
    gen = Frame.parse(reader.read_exact, mask=True, max_size=None)
    next(gen)
    for piece in pieces:
        reader.feed_data(piece)
        while True:
            try:
                gen.send(None)
            except StopIteration as stop:
                frame = stop.value
                if frame.opcode is Opcode.TEXT:
                    frame.data.decode()  # Frame.parse does not validate UTF-8; do it as websockets
                count += 1
                gen = Frame.parse(reader.read_exact, mask=True, max_size=None)
                if not reader.buffer:
                    next(gen)
                    break
            else:
                break
    return count


def parse_websockets_protocol(pieces: list[bytes]) -> int:
    protocol = Protocol(SERVER, max_size=None)
    count = 0
    for piece in pieces:
        protocol.receive_data(piece)
        for frame in protocol.events_received():
            if frame.opcode is Opcode.TEXT:
                frame.data.decode()  # as websockets' connection layer does when assembling
            count += 1
    if protocol.parser_exc is not None:
        raise protocol.parser_exc
    return count


def parse_wsproto(pieces: list[bytes]) -> int:
    # Frame-level API of wsproto (what WSConnection uses after the handshake); it decodes text
    # incrementally and validates UTF-8 itself.
    protocol = FrameProtocol(client=False, extensions=[])
    count = 0
    for piece in pieces:
        protocol.receive_bytes(piece)
        for frame in protocol.received_frames():
            if frame.message_finished and frame.opcode in (
                WsprotoOpcode.TEXT,
                WsprotoOpcode.BINARY,
                WsprotoOpcode.CONTINUATION,
            ):
                count += 1
    return count


CONTENDERS: list[tuple[str, Callable[[list[bytes]], int]]] = [
    ("blaze_green FrameParser", parse_blaze),
    (f"websockets {websockets.version.version} Frame.parse (C apply_mask)", parse_websockets_frame),
    ("websockets Protocol.receive_data", parse_websockets_protocol),
    (f"wsproto {wsproto.__version__} FrameProtocol", parse_wsproto),
]


def timed_run(func: Callable[[list[bytes]], int], pieces: list[bytes], expect: int) -> float:
    """Wall time of one full parse of ``pieces``, checking that every message came out."""
    start = time.perf_counter()
    count = func(pieces)
    elapsed = time.perf_counter() - start
    if count != expect:
        raise AssertionError(f"{func.__name__}: {count} messages, expected {expect}")
    return elapsed


def workloads() -> list[tuple[str, list[bytes], int, int]]:
    """(name, pieces, messages, payload bytes) per workload."""
    binary = os.urandom(MIB)
    # Mixed 1-, 2-, 3- and 4-byte UTF-8, cut to whole characters within 1 MiB.
    text = ("ascii text, ünïcödé, 日本語のテキスト, emoji 😀🎉 " * 30000).encode()[:MIB]
    text = text.decode("utf-8", "ignore").encode()
    small = [os.urandom(100) for _ in range(SMALL_COUNT)]
    small_stream = b"".join(encode_frame(OP_BINARY, p, mask=os.urandom(4)) for p in small)
    small_text = b"".join(
        encode_frame(OP_TEXT, b"x" * 90 + "ü€😀".encode(), mask=os.urandom(4))
        for _ in range(SMALL_COUNT)
    )
    return [
        ("1 MiB binary", chunks(encode_frame(OP_BINARY, binary, mask=os.urandom(4))), 1, MIB),
        ("1 MiB text", chunks(encode_frame(OP_TEXT, text, mask=os.urandom(4))), 1, len(text)),
        ("100 B binary", chunks(small_stream), SMALL_COUNT, 100 * SMALL_COUNT),
        ("100 B text", chunks(small_text), SMALL_COUNT, 100 * SMALL_COUNT),
    ]


def main() -> None:
    started = time.perf_counter()
    loads = workloads()
    # Rounds interleave all contenders and workloads, so a slow spell of a shared machine hits
    # everyone alike; each cell keeps its best run. ~ROUNDS * 1.3 s in total.
    best: dict[tuple[int, int], float] = {}
    for _ in range(ROUNDS):
        for c, (_name, func) in enumerate(CONTENDERS):
            for w, (_load, pieces, messages, _nbytes) in enumerate(loads):
                for _repeat in range(REPEATS[w]):
                    elapsed = timed_run(func, pieces, messages)
                    best[c, w] = min(best.get((c, w), elapsed), elapsed)
    data = os.urandom(MIB)
    mask = os.urandom(4)
    mask_seconds = min(_timed(lambda: apply_mask(data, mask)) for _ in range(50))

    print(f"Python {sys.version.split()[0]}; client->server masked frames (random mask per frame)")
    print("fed in 64 KiB pieces; best of repeated, interleaved runs; text is decoded to str by")
    print("every contender (websockets' Frame/Protocol layer does not, so the bench adds it).\n")
    header = ["parser", *(load[0] for load in loads)]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * len(loads)) + "|")
    for c, (name, _func) in enumerate(CONTENDERS):
        cells = []
        for w, (_load, _pieces, messages, nbytes) in enumerate(loads):
            seconds = best[c, w]
            if messages == 1:
                cells.append(f"{nbytes / seconds / MIB:,.0f} MiB/s")
            else:
                cells.append(f"{messages / seconds / 1000:,.0f}k msg/s")
        print("| " + " | ".join([name, *cells]) + " |")
    print(f"\nblaze_green apply_mask on 1 MiB: {1 / mask_seconds:,.0f} MiB/s")
    print(f"total benchmark time: {time.perf_counter() - started:.1f} s")


def _timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
