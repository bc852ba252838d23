"""Static files: download speed and the server's peak memory while it sends a large file.

    python bench/bench_static.py [--mib 256]

Starts `blaze-green run` on an app with `app.static("/s", tmpdir)` holding one file of --mib
MiB, downloads it once to warm up and then three times (1 MiB reads, discarded), and prints
MB/s and the server process's peak RSS (VmHWM) idle, after the first download and after the
rest: a file sent in chunks leaves the peak where it was; one read whole would raise it by the
file's size. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ["BLAZE_GREEN_NO_PATCH"] = "1"  # this process is the client: not patched

import requests  # noqa: E402

from blaze_green.testing import ServerProcess  # noqa: E402

APP = """from blaze_green import App
import os
app = App()
app.static("/s", os.environ["BENCH_STATIC_DIR"])
"""


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/PID/status")


def download(url: str) -> int:
    total = 0
    with requests.get(url, stream=True, timeout=60) as r:
        r.raise_for_status()
        for chunk in r.iter_content(1024 * 1024):
            total += len(chunk)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "app_static_bench.py").write_text(APP)
        files = root / "files"
        files.mkdir()
        size = args.mib * 1024 * 1024
        with open(files / "big.bin", "wb") as out:
            block = os.urandom(1024 * 1024)
            for _ in range(args.mib):
                out.write(block)
        env = {"BENCH_STATIC_DIR": str(files)}
        with ServerProcess("app_static_bench:app", cwd=root, env=env) as server:
            assert server.proc is not None
            pid = server.proc.pid
            url = server.url + "/s/big.bin"
            idle = peak_rss_kib(pid)
            assert download(url) == size  # warm-up
            before = peak_rss_kib(pid)
            started = time.perf_counter()
            for _ in range(3):
                assert download(url) == size
            seconds = time.perf_counter() - started
            after = peak_rss_kib(pid)
    print(f"file {args.mib} MiB, 3 downloads: {3 * size / seconds / 1e6:.0f} MB/s")
    print(
        f"server peak RSS: {idle / 1024:.1f} MiB idle, {before / 1024:.1f} MiB after one "
        f"download, {after / 1024:.1f} MiB after three more"
    )


if __name__ == "__main__":
    main()
