"""Multipart parsers compared: `multipart` (defnull) and `python-multipart` (Kludex).

    python bench/bench_multipart.py [--rounds N]

Each parser reads the same in-memory bodies in 64 KiB reads, as the server hands them over,
with the same spooling rule (parts over 1 MiB go to a temporary file, as blaze_green uses it):
a 10 MiB file upload, a 50-field form, and a mixed form (20 fields and three 512 KiB files).
Prints MB/s (of body bytes) and parses/s, the best of N rounds. Results and the choice:
docs/http.md, "Forms and uploads".
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections.abc import Callable

BOUNDARY = "----blazeBenchBoundary7MA4YWxkTrZu0gW"
CHUNK = 64 * 1024
SPOOL = 1024 * 1024


def body(fields: int, files: list[int]) -> bytes:
    out = io.BytesIO()
    for i in range(fields):
        out.write(f"--{BOUNDARY}\r\n".encode())
        out.write(f'Content-Disposition: form-data; name="field{i}"\r\n\r\n'.encode())
        out.write(f"value number {i} with some text".encode() + b"\r\n")
    for i, size in enumerate(files):
        out.write(f"--{BOUNDARY}\r\n".encode())
        out.write(
            f'Content-Disposition: form-data; name="file{i}"; filename="f{i}.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        # random bytes: a body without CR/LF runs would flatter a parser's fast path
        out.write(os.urandom(size))
        out.write(b"\r\n")
    out.write(f"--{BOUNDARY}--\r\n".encode())
    return out.getvalue()


def parse_defnull(data: bytes) -> int:
    import multipart

    parser = multipart.MultipartParser(
        io.BytesIO(data),
        BOUNDARY,
        len(data),
        buffer_size=CHUNK,
        spool_limit=SPOOL,
        memory_limit=64 * SPOOL,
        part_limit=1000,
    )
    n = 0
    for part in parser:
        n += 1
        part.close()
    return n


def parse_kludex(data: bytes) -> int:
    from python_multipart import FormParser

    parts: list[object] = []

    def on_field(field: object) -> None:
        parts.append(field)

    def on_file(file: object) -> None:
        parts.append(file)

    parser = FormParser(
        "multipart/form-data",
        on_field,
        on_file,
        boundary=BOUNDARY.encode(),
        config={"MAX_MEMORY_FILE_SIZE": SPOOL},
    )
    stream = io.BytesIO(data)
    while chunk := stream.read(CHUNK):
        parser.write(chunk)
    parser.finalize()
    for part in parts:
        part.close()  # type: ignore[attr-defined]
    return len(parts)


def best(fn: Callable[[bytes], int], data: bytes, rounds: int, repeat: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            fn(data)
        times.append((time.perf_counter() - started) / repeat)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cases = [
        ("10 MiB upload", body(0, [10 * 1024 * 1024]), 4),
        ("50-field form", body(50, []), 200),
        ("20 fields + 3x512 KiB", body(20, [512 * 1024] * 3), 5),
    ]
    parsers = [("multipart (defnull)", parse_defnull), ("python-multipart", parse_kludex)]
    print(f"{'case':24} {'parser':22} {'MB/s':>8} {'parses/s':>10}")
    for name, data, repeat in cases:
        counts = {p: fn(data) for p, fn in parsers}
        assert len(set(counts.values())) == 1, counts  # both saw the same parts
        for pname, fn in parsers:
            seconds = best(fn, data, args.rounds, repeat)
            print(f"{name:24} {pname:22} {len(data) / seconds / 1e6:8.1f} {1 / seconds:10.1f}")


if __name__ == "__main__":
    main()
