"""Micro-benchmark: requests to mounted WSGI apps (app.mount) next to blaze_green's own routes.

Run as ``python bench/bench_mount.py`` (needs curl, flask). Serves tests/apps/mount_app.py with
`blaze-green run` and drives it with one curl process per measurement, all requests on one
keep-alive connection, one after another (a latency measure, not a saturation one):

- `/api/hello`: a blaze_green route; `/`: a Flask view mounted at "/"; `/raw/environ`: a plain
  WSGI app mounted at "/raw";
- `/big`: Flask's send_file of a 3 MiB file, through `wsgi.file_wrapper`.

Prints a markdown table: per path, requests/s (requests / the sum of curl's time_total), the
median time per request (or the median download speed for `/big`), and the server process's
CPU time (user + system, from /proc) per request.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("BLAZE_GREEN_NO_PATCH", "1")  # this process is only a driver
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from blaze_green.testing import ServerProcess  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def curl(url: str, n: int, fmt: str) -> list[float]:
    args = [a for _ in range(n) for a in ("-o", "/dev/null", url)]
    out = subprocess.run(
        ["curl", "-s", "-w", fmt + "\n", *args], capture_output=True, check=True, text=True
    ).stdout
    return [float(line) for line in out.split()]


def main() -> None:
    rows = [
        "| path | what | requests/s | median per request | server CPU per request |",
        "| --- | --- | --- | --- | --- |",
    ]
    with ServerProcess("mount_app:app", cwd=ROOT / "tests" / "apps") as server:
        assert server.pid is not None
        for path, what in [
            ("/api/hello", "blaze_green route"),
            ("/", "Flask view mounted at /"),
            ("/raw/environ", "plain WSGI app mounted at /raw"),
        ]:
            curl(server.url + path, 200, "%{time_total}")  # warm-up
            before = cpu_seconds(server.pid)
            times = curl(server.url + path, 2000, "%{time_total}")
            cpu = (cpu_seconds(server.pid) - before) / len(times)
            rows.append(
                f"| `{path}` | {what} | {len(times) / sum(times):,.0f} | "
                f"{statistics.median(times) * 1e3:.2f} ms | {cpu * 1e3:.3f} ms |"
            )
        curl(server.url + "/big", 5, "%{speed_download}")
        before = cpu_seconds(server.pid)
        speeds = curl(server.url + "/big", 100, "%{speed_download}")
        cpu = (cpu_seconds(server.pid) - before) / len(speeds)
        rows.append(
            f"| `/big` | Flask send_file, 3 MiB, wsgi.file_wrapper | – | "
            f"{statistics.median(speeds) / 2**20:,.0f} MiB/s (min {min(speeds) / 2**20:,.0f}) | "
            f"{cpu * 1e3:.2f} ms |"
        )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
