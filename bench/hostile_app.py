"""The server of `python -m bench.hostile`: blaze_green with its default limits.

python bench/hostile_app.py PORT      (app.listen patches; prints "ready" once listening)

Env: HOSTILE_PING (ping_interval s, "0": off; default 5), HOSTILE_PING_TIMEOUT (default 20, as App).
ws /echo echoes. GET /stats: this process's RSS (KiB), open fds, sessions on /echo and
`app.stats()` (ping timeouts, slow-consumer closes).
"""

import os
import sys

from blaze_green import App


def _seconds(name: str, default: float) -> float | None:
    value = float(os.environ.get(name, default))
    return value or None


app = App(
    allowed_origins="*",
    ping_interval=_seconds("HOSTILE_PING", 5.0),
    ping_timeout=_seconds("HOSTILE_PING_TIMEOUT", 20.0),
)


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


@app.get("/stats")
def stats(req):
    return {
        "rss_kib": rss_kib(),
        "fds": len(os.listdir("/proc/self/fd")),
        "sessions": app.connections("/echo"),
        "stats": app.stats(),
    }


app.ws("/echo", on_message=lambda ws, msg: ws.send(msg))

if __name__ == "__main__":
    app.listen(port=int(sys.argv[1]))
