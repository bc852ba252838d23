"""Bench server: blaze_green itself.

python bench/servers/blaze.py PORT
app.listen does the monkey patching. Origins open (the load generator sends no
Origin anyway), 4 MiB messages, server pings off.

Compression: the package's default, permessage-deflate on (`App(compression="deflate")`,
threshold 128 B, level 6), negotiated only with clients that offer it: the load generator
does with -z (the *_deflate scenarios), not otherwise, so every other scenario runs plain.
BENCH_BLAZE_COMPRESSION=0 (the server blaze_nodeflate) builds the app with
`App(..., compression=None)`: nothing is negotiated even when offered. As with metrics, the
keyword is passed only then (older trees have neither the option nor the extension).

The harness sets BENCH_BLAZE_ROOT to the tree whose blaze_green this process must run
(the repository, or the --baseline checkout for the server blaze_baseline): at import (also
in gunicorn workers) it exits with an error when blaze_green came from anywhere else.
Only public API, and it works with both the old `app.connections(path)` (a list of
sessions) and the new one (a count).

BENCH_BLAZE_METRICS=0 (the server blaze_nometrics, `--metrics-off`) builds the app with
`App(..., metrics=False)` and exits with an error unless `app.stats()` is then empty. The
keyword is passed only then: older trees (`--baseline`) have no `metrics` option. Unset or
"1": the package's default (metrics on).
"""

import os
import sys
import time

from _proto import (
    WAIT_LIMIT_S,
    WAIT_POLL_S,
    messages,
    parse_go_kind,
    port_from_argv,
    warm_ticker,
)

import blaze_green
from blaze_green import App, delay

_ROOT = os.environ.get("BENCH_BLAZE_ROOT")
_FILE = os.path.realpath(blaze_green.__file__)
if _ROOT:
    _real_root = os.path.realpath(_ROOT)
    if os.path.commonpath([_FILE, _real_root]) != _real_root:
        sys.exit(
            f"blaze.py: FATAL: blaze_green was imported from {_FILE}, "
            f"not from BENCH_BLAZE_ROOT={_ROOT}"
        )
print(f"blaze.py: blaze_green from {_FILE}", file=sys.stderr, flush=True)

_METRICS = os.environ.get("BENCH_BLAZE_METRICS", "1")
if _METRICS not in ("0", "1"):
    sys.exit(f"blaze.py: FATAL: BENCH_BLAZE_METRICS={_METRICS!r}: expected 0 or 1")
_COMPRESSION = os.environ.get("BENCH_BLAZE_COMPRESSION", "1")
if _COMPRESSION not in ("0", "1"):
    sys.exit(f"blaze.py: FATAL: BENCH_BLAZE_COMPRESSION={_COMPRESSION!r}: expected 0 or 1")
options = dict(allowed_origins="*", max_message_size=4 << 20, ping_interval=None)
if _METRICS == "0":
    options["metrics"] = False  # only when asked: older trees' App has no such keyword
if _COMPRESSION == "0":
    options["compression"] = None  # likewise: older trees have no compression option
app = App(**options)
if _COMPRESSION == "0":
    print("blaze.py: compression off (App(compression=None))", file=sys.stderr, flush=True)
warm_ticker()  # the ticker bodies of `go ... ticker`, generated before any measurement
if _METRICS == "0":
    if app.stats():
        sys.exit("blaze.py: FATAL: App(metrics=False) still counts (app.stats() is not empty)")
    print("blaze.py: metrics off (App(metrics=False))", file=sys.stderr, flush=True)


@app.get("/hello")
def hello(req):
    return "hi"


def echo(ws, msg):
    ws.send(msg)  # str -> text, bytes -> binary


def subscribers(path):
    """Open sessions on `path` in this process: connections() is a list in older trees, a
    count since the refactor that added sessions()."""
    n = app.connections(path)
    return n if isinstance(n, int) else len(n)


def control(ws, msg):
    go = parse_go_kind(msg)
    if go is None:
        return
    n, count, size, kind = go
    deadline = time.monotonic() + WAIT_LIMIT_S
    while subscribers("/feed") < n and time.monotonic() < deadline:
        delay(WAIT_POLL_S)
    make = messages(kind, count, size)
    for i in range(count):  # in a row: broadcast serializes and frames once, queues per session
        app.broadcast("/feed", make(i))
    ws.send("done")


app.ws("/echo", on_message=echo)
app.ws("/feed")  # subscribers only; the server never sends on its own
app.ws("/control", on_message=control)


if __name__ == "__main__":
    app.listen(port=port_from_argv(), host="127.0.0.1")
