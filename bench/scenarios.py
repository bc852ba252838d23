"""Benchmark scenarios: what runs against which servers, with which sizes.

Each scenario has default parameters and ``--quick`` ones (tiny, for a smoke run),
a list of servers (blaze first, then its peers), cases (sub-measurements run on
the same server process, e.g. N=1000 then N=5000), a ``run`` function returning
one measurement dict, a ``check`` function returning a problem string or None,
and the columns of its report table.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .harness import BenchError, Server, proc_rss_kib, run_loadgen, run_wrk, start_loadgen

WS_PEERS = ["blaze", "websockets", "gevent_websocket_bare", "raw_gevent"]


@dataclass
class Column:
    key: str  # metric key in the run dicts
    header: str
    fmt: str = "{:,.0f}"
    spread: bool = True  # show (min–max)
    unit: str = ""


@dataclass
class Scenario:
    name: str
    title: str
    description: str
    servers: list[str]
    default: dict
    quick: dict
    cases: Callable[[dict], list[dict]]
    run: Callable[[Server, dict, dict], dict]
    check: Callable[[dict], str | None]
    columns: list[Column]
    primary: str  # metric used for the "blaze ÷ peer" ratio
    primary_label: str
    higher_is_better: bool = True
    extra_ratios: list[tuple[str, str]] = field(default_factory=list)
    command: Callable[[dict], str] = lambda p: ""
    estimate_s: Callable[[dict, int], float] = lambda p, n: 0.0


CPU_COLUMNS = [
    Column("server_cpu_pct", "server CPU", "{:.0f}%", spread=False),
    Column("gen_cpu_pct", "loadgen CPU", "{:.0f}%", spread=False),
    Column("other_load_pct", "other load", "{:.0f}%", spread=False),
    Column("steal_pct", "steal", "{:.0f}%", spread=False),
]


# --------------------------------------------------------------------------- http_hello
def _http_run(server: Server, case: dict, p: dict) -> dict:
    return run_wrk(server, p["threads"], p["connections"], p["duration_s"], "/hello")


def _http_check(r: dict) -> str | None:
    if r.get("non_2xx"):
        return f"{r['non_2xx']} non-2xx responses"
    if not r.get("requests"):
        return "no requests completed"
    return None


HTTP_HELLO = Scenario(
    name="http_hello",
    title="HTTP hello",
    description="`GET /hello` → 200 `text/html` `hi` over keep-alive connections, driven by wrk.",
    servers=["blaze", "wsgi_bare", "flask_pywsgi"],
    default=dict(threads=2, connections=50, duration_s=10),
    quick=dict(threads=1, connections=10, duration_s=1),
    cases=lambda p: [dict(case="GET /hello")],
    run=_http_run,
    check=_http_check,
    columns=[
        Column("requests_per_s", "requests/s"),
        Column("p50_ms", "p50 ms", "{:.2f}"),
        Column("p99_ms", "p99 ms", "{:.2f}"),
        Column("server_cpu_pct", "server CPU", "{:.0f}%", spread=False),
        Column("gen_cpu_pct", "wrk CPU", "{:.0f}%", spread=False),
        Column("other_load_pct", "other load", "{:.0f}%", spread=False),
        Column("steal_pct", "steal", "{:.0f}%", spread=False),
    ],
    primary="requests_per_s",
    primary_label="requests/s",
    extra_ratios=[("p99_ms", "p99 latency")],
    command=lambda p: (
        f"wrk -t{p['threads']} -c{p['connections']} -d{p['duration_s']}s --latency "
        "http://127.0.0.1:PORT/hello"
    ),
    estimate_s=lambda p, n: 3 * n * (p["duration_s"] + 0.5),
)


# --------------------------------------------------------------------------- echo
def _echo_run(server: Server, case: dict, p: dict) -> dict:
    args = [
        "-p",
        str(server.pid),
        "-w",
        str(p["warmup_s"]),
        "-t",
        "30",
        "echo",
        "127.0.0.1",
        str(server.port),
        str(p["clients"]),
        str(p["seconds"]),
        str(p["size"]),
    ]
    return run_loadgen(args, p["seconds"] + p["warmup_s"] + 60)


def _echo_check(r: dict) -> str | None:
    if r.get("error"):
        return r["error"]
    if r.get("bad_echoes"):
        return f"{r['bad_echoes']} bad echoes"
    if not r.get("round_trips"):
        return "no round trips"
    return None


ECHO = Scenario(
    name="echo",
    title="WebSocket echo",
    description=(
        "Each client sends a text message on `/echo` and waits for the echo before sending the "
        "next; round trips completed in the window (after a warm-up) per second."
    ),
    servers=WS_PEERS,
    default=dict(clients=50, seconds=10, size=32, warmup_s=1),
    quick=dict(clients=10, seconds=0.5, size=32, warmup_s=0.2),
    cases=lambda p: [dict(case=f"{p['clients']} clients × {p['size']} B")],
    run=_echo_run,
    check=_echo_check,
    columns=[
        Column("rtt_per_s", "round trips/s"),
        Column("p50_ms", "p50 ms", "{:.2f}"),
        Column("p99_ms", "p99 ms", "{:.2f}"),
        *CPU_COLUMNS,
    ],
    primary="rtt_per_s",
    primary_label="round trips/s",
    extra_ratios=[("p99_ms", "p99 latency")],
    command=lambda p: (
        f"loadgen -p PID -w {p['warmup_s']} echo 127.0.0.1 PORT {p['clients']} "
        f"{p['seconds']} {p['size']}"
    ),
    estimate_s=lambda p, n: len(WS_PEERS) * n * (p["seconds"] + p["warmup_s"] + 0.5),
)


# --------------------------------------------------------------------------- big
def _big_cases(p: dict) -> list[dict]:
    return [dict(case=f"{_size(p['msg_bytes'])} {t}", type=t) for t in p["types"]]


def _size(n: int) -> str:
    if n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def _big_run(server: Server, case: dict, p: dict) -> dict:
    budget = p["budget_s"].get(server.spec.name, p["budget_s"]["default"])
    args = [
        "-p",
        str(server.pid),
        "-d",
        str(budget),
        "-t",
        str(budget + 60),
        "big",
        "127.0.0.1",
        str(server.port),
        str(p["msg_bytes"]),
        str(p["max_count"]),
        case["type"],
    ]
    return run_loadgen(args, budget + 90)


def _big_check(r: dict) -> str | None:
    if r.get("error"):
        return r["error"]
    if r.get("mismatches"):
        return f"{r['mismatches']} echoed messages differed"
    if not r.get("count"):
        return "no message echoed"
    return None


BIG = Scenario(
    name="big",
    title="Big messages",
    description=(
        "One connection on `/echo` sends a large message (binary: random bytes; text: valid UTF-8 "
        "with 1–4-byte characters) and waits for the full echo, verified byte for byte, again and "
        "again until a time budget is used up (4 s; 10 s for gevent-websocket, which is far "
        "slower). "
        "MiB/s = message bytes × messages / elapsed (each payload counted once)."
    ),
    servers=["blaze", "websockets", "gevent_websocket_bare"],
    default=dict(
        msg_bytes=1 << 20,
        types=["binary", "text"],
        max_count=100000,
        budget_s={"default": 4, "gevent_websocket_bare": 10},
    ),
    quick=dict(
        msg_bytes=64 << 10, types=["binary", "text"], max_count=20, budget_s={"default": 0.3}
    ),
    cases=_big_cases,
    run=_big_run,
    check=_big_check,
    columns=[
        Column("mib_per_s", "MiB/s", "{:,.1f}"),
        Column("count", "messages", "{:,.0f}", spread=False),
        Column("p50_ms", "p50 round trip ms", "{:.1f}"),
        *CPU_COLUMNS,
    ],
    primary="mib_per_s",
    primary_label="MiB/s",
    command=lambda p: (
        f"loadgen -p PID -d BUDGET big 127.0.0.1 PORT {p['msg_bytes']} {p['max_count']} binary|text"
    ),
    estimate_s=lambda p, n: (
        sum(
            p["budget_s"].get(s, p["budget_s"]["default"]) + 0.3
            for s in ["blaze", "websockets", "gevent_websocket_bare"]
        )
        * len(p["types"])
        * n
    ),
)


# --------------------------------------------------------------------------- fanout
def _fanout_run(server: Server, case: dict, p: dict) -> dict:
    args = [
        "-p",
        str(server.pid),
        "-t",
        str(p["timeout_s"]),
        "fanout",
        "127.0.0.1",
        str(server.port),
        str(case["n"]),
        str(p["count"]),
        str(p["size"]),
    ]
    return run_loadgen(args, 2 * p["timeout_s"] + 30)


def _fanout_check(r: dict) -> str | None:
    if r.get("deliveries") != r.get("expected"):
        return f"{r.get('deliveries')} of {r.get('expected')} delivered" + (
            f" ({r['error']})" if r.get("error") else ""
        )
    if r.get("order_errors"):
        return f"{r['order_errors']} order errors"
    if r.get("error"):
        return r["error"]
    return None


FANOUT = Scenario(
    name="fanout",
    title="Broadcast fan-out",
    description=(
        "N subscribers on `/feed`; `go N COUNT SIZE` on `/control` makes the server do COUNT "
        "broadcasts in a row, each a ~SIZE-byte JSON text carrying its send time. Deliveries/s = "
        "N×COUNT / (time from `go` to the last delivery); latency = receive time − send time "
        "in the message; every subscriber checks it got all messages in order."
    ),
    servers=WS_PEERS,
    default=dict(ns=[1000, 5000], count=200, size=100, timeout_s=60),
    quick=dict(ns=[50], count=20, size=100, timeout_s=20),
    cases=lambda p: [dict(case=f"N={n}", n=n) for n in p["ns"]],
    run=_fanout_run,
    check=_fanout_check,
    columns=[
        Column("deliveries_per_s", "deliveries/s"),
        Column("p50_ms", "p50 latency ms", "{:.1f}"),
        Column("p99_ms", "p99 latency ms", "{:.1f}"),
        Column("elapsed_s", "elapsed s", "{:.2f}", spread=False),
        *CPU_COLUMNS,
    ],
    primary="deliveries_per_s",
    primary_label="deliveries/s",
    extra_ratios=[("p99_ms", "p99 latency")],
    command=lambda p: f"loadgen -p PID fanout 127.0.0.1 PORT N {p['count']} {p['size']}",
    estimate_s=lambda p, n: n * sum(1 + nn * p["count"] / 80000 for nn in p["ns"]) * len(WS_PEERS),
)


# --------------------------------------------------------------------------- idle_memory
def _idle_run(server: Server, case: dict, p: dict) -> dict:
    time.sleep(p["settle_s"])
    before = proc_rss_kib(server.pid)
    if before is None:
        raise BenchError("server gone before the idle test")
    n = p["n"]
    run = start_loadgen(
        ["-t", "60", "idle", "127.0.0.1", str(server.port), str(n), str(p["settle_s"] + 5.0)], 120
    )
    ready = None
    while True:
        line = run.readline()
        if not line:
            break
        if '"ready"' in line:
            ready = line
            break
    after = None
    if ready:
        time.sleep(p["settle_s"])
        after = proc_rss_kib(server.pid)
    if run.proc.poll() is None:
        with contextlib.suppress(OSError):
            run.proc.send_signal(signal.SIGUSR1)  # end the hold: close the connections now
    r = run.finish()
    r["command"] = "loadgen " + " ".join(run.cmd[1:])
    if not ready or after is None:
        r.setdefault("error", "connections did not all open" if not ready else "server gone")
        return r
    r.update(
        rss_before_kib=before,
        rss_after_kib=after,
        rss_before_mib=before / 1024,
        rss_after_mib=after / 1024,
        kib_per_conn=(after - before) / n,
    )
    return r


def _idle_check(r: dict) -> str | None:
    if r.get("error"):
        return r["error"]
    if r.get("alive_at_end") != r.get("n"):
        return f"only {r.get('alive_at_end')} of {r.get('n')} connections stayed open"
    return None


IDLE = Scenario(
    name="idle_memory",
    title="Idle connection memory",
    description=(
        "N WebSocket connections open on `/echo` and do nothing; server RSS (VmRSS) is read before "
        "connecting and again after all handshakes completed plus a settle delay. "
        "KiB/connection = RSS delta / N (process memory only: kernel socket buffers are not "
        "in RSS)."
    ),
    servers=["blaze", "websockets", "gevent_websocket_bare"],
    default=dict(n=5000, settle_s=1.0),
    quick=dict(n=100, settle_s=0.2),
    cases=lambda p: [dict(case=f"{p['n']} idle")],
    run=_idle_run,
    check=_idle_check,
    columns=[
        Column("kib_per_conn", "KiB/connection", "{:.1f}"),
        Column("rss_before_mib", "RSS before MiB", "{:.1f}", spread=False),
        Column("rss_after_mib", "RSS after MiB", "{:.1f}", spread=False),
        Column("connect_s", "connect s", "{:.2f}", spread=False),
    ],
    primary="kib_per_conn",
    primary_label="KiB/connection",
    higher_is_better=False,
    command=lambda p: f"loadgen idle 127.0.0.1 PORT {p['n']} HOLD_S",
    estimate_s=lambda p, n: n * 3 * (2 * p["settle_s"] + 2.0),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in [HTTP_HELLO, ECHO, BIG, FANOUT, IDLE]}
