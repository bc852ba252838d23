"""Benchmark scenarios: what runs against which servers, with which sizes.

Each scenario has default parameters and ``--quick`` ones (tiny, for a smoke run),
a list of servers (blaze first, then its peers), cases (sub-measurements run on
the same server process, e.g. N=1000 then N=5000), a ``run`` function returning
one measurement dict, a ``check`` function returning a problem string or None,
and the columns of its report table. The cluster scenario starts its servers per
case instead (``spec_for``: one process, or gunicorn with W workers) and needs a
Redis (``setup``/``teardown``).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .harness import (
    COMPRESSION_ENV,
    GUNICORN_SPECS,
    NODEFLATE,
    REPO,
    SERVERS,
    VARIANTS,
    BenchError,
    RedisProc,
    Server,
    ServerSpec,
    connections_per_pid,
    proc_rss_kib,
    run_loadgen,
    run_wrk,
    start_loadgen,
)

# every WebSocket server, blaze first; the ceiling (raw gevent) last
WS_PEERS = [
    "blaze",
    "websockets",
    "websockets_uvloop",
    "starlette_uvicorn",
    "flask_sock",
    "flask_socketio",
    "gevent_websocket_bare",
    "raw_gevent",
]
# big messages: Socket.IO would need its own framing of binary attachments (and JSON-escaped
# text), so Flask-SocketIO is left out; raw gevent has no fragmentation/UTF-8 checks
BIG_PEERS = [
    "blaze",
    "websockets",
    "websockets_uvloop",
    "starlette_uvicorn",
    "flask_sock",
    "gevent_websocket_bare",
]
# idle memory: every framework (the raw ceiling holds nothing worth comparing)
IDLE_PEERS = [s for s in WS_PEERS if s != "raw_gevent"]
CLUSTER_PEERS = ["blaze", "flask_socketio"]


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
    reps: int = 3  # default repetitions (--reps overrides; --quick: 1)
    pin: bool = True  # pin servers and load generators to their cores
    # per-case servers (cluster): the spec of server NAME for CASE; None = one process per
    # repetition for all cases, from SERVERS
    spec_for: Callable[[str, dict], ServerSpec] | None = None
    # resources for the whole scenario: setup() returns a skip reason or None
    setup: Callable[[], str | None] = lambda: None
    teardown: Callable[[], None] = lambda: None
    # extra lines under the table (entry -> markdown lines)
    notes: Callable[[dict], list[str]] = lambda entry: []
    reading: str = ""  # how to read this table (docs/BENCHMARKS.md)
    # a run with high hypervisor steal may be measured again on the same server (not for
    # memory, which steal does not change, nor the cluster, whose workers hold state)
    retry_on_steal: bool = True


CPU_COLUMNS = [
    Column("server_cpu_pct", "server CPU", "{:.0f}%", spread=False),
    Column("gen_cpu_pct", "loadgen CPU", "{:.0f}%", spread=False),
    Column("other_load_pct", "other load", "{:.0f}%", spread=False),
    Column("steal_pct", "steal", "{:.0f}%", spread=False),
]


def gen_base(server: Server, p: dict | None = None) -> list[str]:
    """Load generator options every WebSocket mode shares: whose CPU to sample (-p, every
    gunicorn worker), Socket.IO framing (-s) for Flask-SocketIO, and the scenario's own
    flags (``p["loadgen_flags"]``: -z permessage-deflate, -J ticker JSON payloads)."""
    args = ["-p", ",".join(str(p) for p in server.cpu_pids)]
    if server.spec.sio:
        args.append("-s")
    args += list((p or {}).get("loadgen_flags", ()))
    return args


# --------------------------------------------------------------------------- http_hello
def _http_run(server: Server, case: dict, p: dict) -> dict:
    return run_wrk(server, p["threads"], p["connections"], p["duration_s"], "/hello")


def _http_check(r: dict) -> str | None:
    if r.get("non_2xx"):
        return f"{r['non_2xx']} non-2xx responses"
    if not r.get("requests"):
        return "no requests completed"
    return None


HTTP_SERVERS = ["blaze", "wsgi_bare", "flask_pywsgi"]

HTTP_HELLO = Scenario(
    name="http_hello",
    title="HTTP hello",
    description="`GET /hello` → 200 `text/html` `hi` over keep-alive connections, driven by wrk.",
    servers=HTTP_SERVERS,
    default=dict(threads=2, connections=50, duration_s=5),
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
    estimate_s=lambda p, n: len(HTTP_SERVERS) * n * (p["duration_s"] + 0.7),
    # p99 over 5 s is moved by a few brief VM stalls; five runs make the median sturdier
    reps=5,
    reading=(
        "On gevent servers a connection whose next request is already there is served again "
        "without yielding, so some connections are served back-to-back while others wait: p50 "
        "can be tiny and p99 large. That is the servers' behaviour, not wrk's. blaze_green's "
        "handler yields between keep-alive requests, and it replaces three parts of pywsgi's "
        "per-request work (the email-package header parser, a Date string formatted per response, "
        "gevent's sendall with its SO_SNDBUF lookup: docs/DESIGN.md), which is why it passes the "
        "bare function on stock pywsgi, the ceiling for that server."
    ),
)


# --------------------------------------------------------------------------- echo
def _echo_run(server: Server, case: dict, p: dict) -> dict:
    args = [
        *gen_base(server, p),
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
        "next; round trips completed in the window (after a warm-up) per second. Flask-SocketIO: "
        'the same over Socket.IO (`42["echo","<payload>"]` emitted back to the sender).'
    ),
    servers=WS_PEERS,
    default=dict(clients=50, seconds=3, size=32, warmup_s=0.5),
    quick=dict(clients=10, seconds=0.3, size=32, warmup_s=0.1),
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
    estimate_s=lambda p, n: len(WS_PEERS) * n * (p["seconds"] + p["warmup_s"] + 0.4),
    reps=3,
    reading=(
        "Closed loop: every client waits for its echo, so this is per-message latency turned "
        "into a rate. With pinning, every exchange is a wake-up across cores, and servers may "
        "stay below 100% CPU; the CPU columns say which side was busy. Gevent servers serve a "
        "connection whose next message is already there without yielding, so p99 varies "
        "between repetitions."
    ),
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


def _big_budget(p: dict, name: str) -> float:
    return p["budget_s"].get(name, p["budget_s"]["default"])


def _big_run(server: Server, case: dict, p: dict) -> dict:
    budget = _big_budget(p, server.spec.name)
    args = [
        *gen_base(server),
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
        "again until a time budget is used up (2 s; 5 s for gevent-websocket, whose pure-Python "
        "unmasking manages a few MiB/s). MiB/s = message bytes × messages / elapsed (each "
        "payload counted once). Flask-SocketIO is not in this table: Socket.IO sends binary as "
        "separate attachment frames and text as JSON strings, another workload."
    ),
    servers=BIG_PEERS,
    default=dict(
        msg_bytes=1 << 20,
        types=["binary", "text"],
        max_count=100000,
        budget_s={"default": 2, "gevent_websocket_bare": 5},
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
    estimate_s=lambda p, n: sum(_big_budget(p, s) + 0.4 for s in BIG_PEERS) * len(p["types"]) * n,
    reps=2,
    reading=(
        "One connection, one message in flight: this is the cost of receiving, validating "
        "(text: UTF-8) and sending one large message, not a concurrency test."
    ),
)


# --------------------------------------------------------------------------- fanout
def _fanout_run(server: Server, case: dict, p: dict) -> dict:
    args = [
        *gen_base(server, p),
        "-t",
        str(p["timeout_s"]),
        "fanout",
        "127.0.0.1",
        str(server.port),
        str(case["n"]),
        str(case["count"]),
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


def _fanout_cases(p: dict) -> list[dict]:
    return [dict(case=f"N={n} × {count}", n=n, count=count) for n, count in p["runs"]]


FANOUT_READING = (
    "The protocol asks for COUNT broadcasts *in a row*, with no yield in between. Servers that "
    "write inside the broadcast call (websockets, Starlette, Flask-Sock, gevent-websocket, raw "
    "gevent) deliver message 0 while later ones are still being produced, one send per message "
    "and subscriber. blaze_green queues frames per session and writes them in rounds (every "
    "`coalesce_window`, 2 ms by default, or an eighth of the last round if longer, during a "
    "long burst; once when a short one yields): "
    "a few large sends per subscriber instead of COUNT, so it finishes far sooner, and each "
    "message waits at most about one round before it leaves. Flask-SocketIO also queues per "
    "session, but its writer greenlets only run once the emitting loop yields, so its early "
    "messages wait for the whole burst and its latency is about the burst's length. Compare "
    "deliveries/s for throughput; the latency columns measure how long a burst takes to drain "
    "(receive time − the send time written in the message), not the latency of one message "
    "on an idle server."
)

FANOUT = Scenario(
    name="fanout",
    title="Broadcast fan-out",
    description=(
        "N subscribers on `/feed`; `go N COUNT SIZE` on `/control` makes the server do COUNT "
        "broadcasts in a row, each a ~SIZE-byte JSON text carrying its send time. Deliveries/s = "
        "N×COUNT / (time from `go` to the last delivery); latency = receive time − send time "
        "in the message; every subscriber checks it got all messages in order. Flask-SocketIO: "
        "subscribers join a room and each broadcast is one `emit` to it."
    ),
    servers=WS_PEERS,
    default=dict(runs=[(1000, 200), (5000, 200)], size=100, timeout_s=90),
    quick=dict(runs=[(50, 20)], size=100, timeout_s=20),
    cases=_fanout_cases,
    run=_fanout_run,
    check=_fanout_check,
    columns=[
        Column("deliveries_per_s", "deliveries/s"),
        Column("p50_ms", "p50 latency ms", "{:.1f}"),
        Column("p99_ms", "p99 latency ms", "{:.1f}"),
        Column("elapsed_s", "elapsed s", "{:.2f}", spread=False),
        Column("connect_s", "connect s", "{:.1f}", spread=False),
        *CPU_COLUMNS,
    ],
    primary="deliveries_per_s",
    primary_label="deliveries/s",
    extra_ratios=[("p99_ms", "p99 latency")],
    command=lambda p: f"loadgen -p PID fanout 127.0.0.1 PORT N COUNT {p['size']}",
    # connecting runs at ~1,500/s on the slow servers; peers deliver ~40-90k/s (blaze far more)
    estimate_s=lambda p, n: (
        n * sum(len(WS_PEERS) * (1 + nn / 1500) + 7 * nn * c / 60000 for nn, c in p["runs"])
    ),
    # p99 moves by ±2 ms between runs of the same server here; three runs steady the median
    reps=3,
    reading=FANOUT_READING,
)


# --------------------------------------------------------------------------- idle_memory
def _idle_run(server: Server, case: dict, p: dict) -> dict:
    time.sleep(p["settle_s"])
    before = proc_rss_kib(server.pid)
    if before is None:
        raise BenchError("server gone before the idle test")
    n = p["n"]
    sio = ["-s"] if server.spec.sio else []
    sio += list(p.get("loadgen_flags", ()))
    run = start_loadgen(
        [*sio, "-t", "60", "idle", "127.0.0.1", str(server.port), str(n), str(p["settle_s"] + 5.0)],
        120,
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
        "in RSS). Flask-SocketIO's connections count once their Socket.IO connect completed."
    ),
    servers=IDLE_PEERS,
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
    estimate_s=lambda p, n: n * len(IDLE_PEERS) * (2 * p["settle_s"] + 1.0 + p["n"] / 1500),
    reps=2,
    reading=(
        "Lower is better. `connect s` is how long the N handshakes took (at most 128 in flight); "
        "it is not a benchmark of its own but shows the cost of the upgrade path."
    ),
    retry_on_steal=False,
)


# --------------------------------------------------------------------------- cluster
REDIS: dict[str, RedisProc | None] = {"proc": None}


def _cluster_setup() -> str | None:
    if RedisProc.binary() is None:
        return "redis-server is not installed (apt-get install -y redis-server)"
    try:
        REDIS["proc"] = RedisProc().start()
    except BenchError as e:
        return str(e)
    return None


def _cluster_teardown() -> None:
    proc = REDIS.get("proc")
    if proc is not None:
        proc.stop()
        REDIS["proc"] = None


def _cluster_spec(name: str, case: dict) -> ServerSpec:
    if case["workers"] == 1:
        return SERVERS[name]
    redis = REDIS["proc"]
    return GUNICORN_SPECS[name].with_(workers=case["workers"], redis_url=redis.url if redis else "")


def _cluster_cases(p: dict) -> list[dict]:
    out = []
    for w in p["workers"]:
        n = w * p["per_worker"]
        label = f"1 process, no broker, N={n}" if w == 1 else f"gunicorn -w {w} + Redis, N={n}"
        out.append(dict(case=label, workers=w, n=n))
    return out


def _cluster_run(server: Server, case: dict, p: dict) -> dict:
    redis = REDIS["proc"]
    gunicorn = server.spec.gunicorn
    aux = ["-a", str(redis.pid)] if (gunicorn and redis) else []
    args = [
        *gen_base(server),
        *aux,
        "-t",
        str(p["timeout_s"]),
        "-g",
        "0",  # go 0 COUNT SIZE: do not wait; every subscriber is connected by then
        "-H",  # hold after connecting: count clients per worker, check Redis subscriptions
        "fanout",
        "127.0.0.1",
        str(server.port),
        str(case["n"]),
        str(p["count"]),
        str(p["size"]),
    ]
    run = start_loadgen(args, 3 * p["timeout_s"] + 30)
    ready = False
    while True:
        line = run.readline()
        if not line:
            break
        if '"ready"' in line:
            ready = True
            break
    spread = {}
    numsub = None
    if ready:
        spread = connections_per_pid(server.cpu_pids, server.port)
        if gunicorn and redis is not None:
            # every worker that has subscribers must hear the broadcasts: wait (up to 10 s)
            # until that many processes are subscribed to the app's channel
            want = sum(1 for v in spread.values() if v > 0)
            deadline = time.monotonic() + 10
            numsub = redis.numsub(server.spec.redis_channel)
            while numsub < want and time.monotonic() < deadline:
                time.sleep(0.05)
                numsub = redis.numsub(server.spec.redis_channel)
    if run.proc.poll() is None:
        with contextlib.suppress(OSError):
            run.proc.send_signal(signal.SIGUSR1)  # send the go
    r = run.finish()
    r["command"] = "loadgen " + " ".join(run.cmd[1:])
    r["workers"] = case["workers"]
    r["clients_per_worker"] = sorted(spread.values(), reverse=True)
    if numsub is not None:
        r["redis_subscribers"] = numsub
    return r


def _cluster_notes(entry: dict) -> list[str]:
    lines = []
    for case in entry["cases"]:
        spreads = []
        for server in entry["servers"]:
            row = entry["rows"].get(f"{case}|{server}")
            if not row:
                continue
            per_run = [
                "/".join(str(x) for x in r.get("clients_per_worker") or [])
                for r in row["runs"]
                if len(r.get("clients_per_worker") or []) > 1
            ]
            if per_run:
                spreads.append(f"{SERVERS[server].label} {', '.join(per_run)}")
        if spreads:
            lines.append(
                f"Clients per worker (busiest first, one group per repetition), {case}: "
                + "; ".join(spreads)
                + "."
            )
    target = []
    for case in entry["cases"]:
        rat = entry.get("ratios", {}).get(f"{case}|flask_socketio", {}).get("deliveries_per_s")
        if rat is not None and "gunicorn" in case:
            target.append(f"{case}: {rat:.1f}× {'(met)' if rat >= 2 else '(NOT met)'}")
    if target:
        lines.append(
            "Target (from the issue): blaze_green's cluster fan-out at least 2× Flask-SocketIO's "
            "deliveries/s — " + "; ".join(target) + "."
        )
    return lines


CLUSTER = Scenario(
    name="cluster",
    title="Cluster fan-out (gunicorn workers + Redis)",
    description=(
        "Fan-out across processes: gunicorn with W workers behind one listening socket (the "
        "kernel spreads the clients over the workers; gunicorn does not use SO_REUSEPORT), "
        "1,000 subscribers per worker, and a Redis started for the run (`--save '' "
        "--appendonly no`). Once every subscriber's handshake is done (and every worker with "
        "subscribers is subscribed to Redis) one `/control` connection sends `go 0 COUNT "
        "SIZE`: the worker it landed on broadcasts COUNT messages in a row, the others get "
        "them through Redis. Deliveries/s = all messages on all subscribers / (time from `go` "
        "to the last delivery). blaze_green: `gunicorn -k blaze_green.worker."
        "GeventWebSocketWorker` with `BLAZE_BROKER_URL`; Flask-SocketIO: `gunicorn -k "
        "geventwebsocket.gunicorn.workers.GeventWebSocketWorker` with "
        "`message_queue=redis://...`, websocket transport only. Both with "
        "`--worker-connections 10000` (gevent-websocket's worker keeps every WebSocket in the "
        "pool). The 1-process rows are the same servers without gunicorn or broker. Nothing "
        "is pinned: the workers, Redis and the load generator share the machine's cores."
    ),
    servers=CLUSTER_PEERS,
    default=dict(workers=[1, 2, 4], per_worker=1000, count=200, size=100, timeout_s=90),
    quick=dict(workers=[1, 2], per_worker=50, count=20, size=100, timeout_s=30),
    cases=_cluster_cases,
    run=_cluster_run,
    check=_fanout_check,
    columns=[
        Column("deliveries_per_s", "deliveries/s"),
        Column("p50_ms", "p50 latency ms", "{:.1f}"),
        Column("p99_ms", "p99 latency ms", "{:.1f}"),
        Column("elapsed_s", "elapsed s", "{:.2f}", spread=False),
        Column("server_cpu_pct", "server CPU (all workers)", "{:.0f}%", spread=False),
        Column("aux_cpu_pct", "Redis CPU", "{:.0f}%", spread=False),
        Column("gen_cpu_pct", "loadgen CPU", "{:.0f}%", spread=False),
        Column("other_load_pct", "other load", "{:.0f}%", spread=False),
    ],
    primary="deliveries_per_s",
    primary_label="deliveries/s",
    extra_ratios=[("p99_ms", "p99 latency")],
    command=lambda p: (
        f"loadgen -p PIDS -a REDIS_PID -g 0 -H fanout 127.0.0.1 PORT N {p['count']} {p['size']}"
    ),
    estimate_s=lambda p, n: (
        n * sum(6 + w * p["per_worker"] * p["count"] / 90000 for w in p["workers"])
    ),
    reps=2,
    pin=False,
    spec_for=_cluster_spec,
    setup=_cluster_setup,
    teardown=_cluster_teardown,
    notes=_cluster_notes,
    reading=(
        "Server CPU is the sum over the workers (% of one core, so up to 100% × cores). With "
        "more workers than cores, workers, Redis and the load generator compete for the same "
        "cores: on a 2-core machine the 4-worker rows measure the cost of the broker path more "
        "than extra capacity. The single-process rows are the reference. The latency trade-off "
        "of the fan-out table applies here too."
    ),
    retry_on_steal=False,
)

# --------------------------------------------------------------------------- permessage-deflate
# Servers of the *_deflate scenarios: blaze (compression on, the package default), blaze
# without compression, websockets with its default compression. The load generator runs with
# -z (offers permessage-deflate, inflates and checks every message) and, for fan-out and
# echo, -J (~1 KiB JSON ticker batches, every one different).
DEFLATE_PEERS = ["blaze", NODEFLATE, "websockets_deflate"]
DEFLATE_TARGETS_READING = (
    "The issue's targets, and whether this run met them, are in the compression section near "
    "the top of this report."
)
GEN_LIMIT_PCT = 90.0  # load generator CPU above this: it, not the server, set the pace


def expects_deflate(spec: ServerSpec) -> bool | None:
    """Whether a server must negotiate permessage-deflate when offered it: True/False, or None
    when unknown (another checkout's blaze_green, `--baseline`, may not have it)."""
    env = dict(spec.env)
    if spec.script == "blaze.py":
        if env.get(COMPRESSION_ENV) == "0":
            return False
        return True if spec.blaze_root == str(REPO) else None
    if spec.script == "websockets_asyncio.py":
        return env.get("BENCH_WS_COMPRESSION") == "deflate"
    return None


def _deflate_problem(r: dict) -> str | None:
    """Negotiation as the server's settings say: all connections (compression on), none (off)."""
    expect, conns, got = r.get("expect_deflate"), r.get("conns"), r.get("deflate_conns")
    if expect is True and got != conns:
        return f"permessage-deflate negotiated on {got} of {conns} connections (expected all)"
    if expect is False and got:
        return f"permessage-deflate negotiated on {got} connections although compression is off"
    if expect is True and r.get("rx_msgs") and not r.get("rx_compressed"):
        return "permessage-deflate negotiated but no message arrived compressed"
    for key in ("inflate_errors", "proto_errors", "content_errors"):
        if r.get(key):
            why = f" ({r['error']})" if r.get("error") else ""
            return f"{r[key]} {key.replace('_', ' ')}{why}"
    return None


def _with_deflate(run, conns):
    def wrapped(server: Server, case: dict, p: dict) -> dict:
        r = run(server, case, p)
        r["expect_deflate"] = expects_deflate(server.spec)
        r["conns"] = conns(case, p)
        return r

    return wrapped


def _gen_limit_notes(entry: dict) -> list[str]:
    """Flag the rows where the load generator (inflating every message, deflating what it
    sends) was itself near a full core: there the server's number is a lower bound."""
    flagged = []
    for row in entry["rows"].values():
        pcts = [r["gen_cpu_pct"] for r in row.get("runs", []) if "gen_cpu_pct" in r]
        if pcts and max(pcts) >= GEN_LIMIT_PCT:
            flagged.append(f"{row['server']} ({row['case']}, up to {max(pcts):.0f}%)")
    if not flagged:
        return []
    return [
        f"Load generator near a full core: {'; '.join(flagged)}. Inflating ~1 KiB takes it a few "
        "µs per message, so there it set the pace and the server's deliveries/s (round trips/s) "
        "is a lower bound; compare its server CPU column."
    ]


def _check_deflate(check):
    def wrapped(r: dict) -> str | None:
        return _deflate_problem(r) or check(r)

    return wrapped


WIRE_COLUMNS = [
    Column("wire_bytes_per_msg", "wire B/delivery", "{:,.0f}", spread=False),
    Column("payload_bytes_per_msg", "raw B/delivery", "{:,.0f}", spread=False),
    Column("wire_pct", "wire ÷ raw", "{:.0f}%", spread=False),
    Column("compressed_pct", "compressed", "{:.0f}%", spread=False),
]
DEFLATE_FLAGS = ["-z", "-J"]

FANOUT_DEFLATE = Scenario(
    name="fanout_deflate",
    title="Broadcast fan-out with permessage-deflate",
    description=(
        "The fan-out of `fanout` with compression: every subscriber (and the control "
        "connection) offers `permessage-deflate; client_max_window_bits`, and `go N COUNT SIZE "
        'ticker` makes the server broadcast COUNT ~1 KiB JSON ticker batches (`{"seq":I,"ts":T,'
        '"type":"ticker",...,"data":[{"product_id":...,"price":...,"best_bid":...,...},...]}`, '
        "every one different: about 70% smaller deflated on its own). The load generator "
        "inflates every compressed message (blaze_green answers `server_no_context_takeover`: "
        "one inflater reset per message, and the output of a compressed message it has seen on "
        "another connection is reused after a byte-for-byte comparison, as each real subscriber"
        " would inflate on its own machine; websockets keeps its context: one inflater per "
        "connection) and checks it as in `fanout` (all messages, in order, seq/ts, a ticker "
        "batch). Servers: blaze_green (compression on, its default), blaze_green with "
        "`compression=None` (plain: the same messages, nothing negotiated), websockets with its"
        " default permessage-deflate. `wire B/delivery` = WebSocket frame bytes received "
        "(headers + payload, as sent) per delivery; `raw` = the message after inflating."
    ),
    servers=DEFLATE_PEERS,
    default=dict(
        runs=[(1000, 200), (5000, 200)], size=1024, timeout_s=240, loadgen_flags=DEFLATE_FLAGS
    ),
    quick=dict(runs=[(50, 20)], size=1024, timeout_s=30, loadgen_flags=DEFLATE_FLAGS),
    cases=_fanout_cases,
    run=_with_deflate(_fanout_run, lambda case, p: case["n"]),
    check=_check_deflate(_fanout_check),
    columns=[
        Column("deliveries_per_s", "deliveries/s"),
        Column("p50_ms", "p50 latency ms", "{:.1f}"),
        Column("p99_ms", "p99 latency ms", "{:.1f}"),
        *WIRE_COLUMNS,
        Column("elapsed_s", "elapsed s", "{:.2f}", spread=False),
        Column("connect_s", "connect s", "{:.1f}", spread=False),
        *CPU_COLUMNS,
    ],
    primary="deliveries_per_s",
    primary_label="deliveries/s",
    extra_ratios=[("p99_ms", "p99 latency"), ("wire_bytes_per_msg", "wire bytes")],
    command=lambda p: (
        f"loadgen -p PID -z -J -t {p['timeout_s']} fanout 127.0.0.1 PORT N COUNT {p['size']}"
    ),
    # websockets compresses per connection (~10-20k deliveries/s here); blaze far faster
    estimate_s=lambda p, n: (
        n * sum(3 * (1 + nn / 1500) + nn * c / 15000 + 2 * nn * c / 150000 for nn, c in p["runs"])
    ),
    reps=2,
    notes=_gen_limit_notes,
    reading=(
        "blaze_green compresses each broadcast once, with one shared compressor and no context "
        "(`server_no_context_takeover`), and sends the same compressed frame to every "
        "subscriber; websockets' `broadcast()` compresses every message once per connection, "
        "each with its own context (so its later messages shrink more, at a compression per "
        "delivery). Both the load generator's inflating (its CPU column) and the server's "
        "compressing are in the window: inflating ~1 KiB costs the generator a few µs per message "
        "(for blaze_green once per broadcast, the shared frame's output being reused), so at a "
        "few hundred thousand inflates/s it nears a full core (flagged below the table when "
        "it does). The latency trade-off of `fanout` applies. " + DEFLATE_TARGETS_READING
    ),
)

ECHO_DEFLATE = Scenario(
    name="echo_deflate",
    title="WebSocket echo with permessage-deflate",
    description=(
        "The closed-loop echo of `echo` with compression: each client offers permessage-deflate "
        "and sends ~1 KiB JSON ticker batches (64 different ones in turn), each deflated on its "
        "own (RSV1) where negotiated; the server inflates it, echoes it (compressing it again: "
        "blaze_green above its 128-byte threshold, websockets always, with its per-connection "
        "context) and the client inflates and compares the echo byte for byte. `wire B/delivery` "
        "is the echo's frame as received, `raw` its text."
    ),
    servers=DEFLATE_PEERS,
    default=dict(clients=50, seconds=3, size=1024, warmup_s=0.5, loadgen_flags=DEFLATE_FLAGS),
    quick=dict(clients=10, seconds=0.3, size=1024, warmup_s=0.1, loadgen_flags=DEFLATE_FLAGS),
    cases=lambda p: [dict(case=f"{p['clients']} clients × ~{p['size']} B JSON")],
    run=_with_deflate(_echo_run, lambda case, p: p["clients"]),
    check=_check_deflate(_echo_check),
    columns=[
        Column("rtt_per_s", "round trips/s"),
        Column("p50_ms", "p50 ms", "{:.2f}"),
        Column("p99_ms", "p99 ms", "{:.2f}"),
        *WIRE_COLUMNS,
        Column("tx_wire_bytes_per_msg", "sent B/message", "{:,.0f}", spread=False),
        *CPU_COLUMNS,
    ],
    primary="rtt_per_s",
    primary_label="round trips/s",
    extra_ratios=[("p99_ms", "p99 latency")],
    command=lambda p: (
        f"loadgen -p PID -z -J -w {p['warmup_s']} echo 127.0.0.1 PORT {p['clients']} "
        f"{p['seconds']} {p['size']}"
    ),
    estimate_s=lambda p, n: len(DEFLATE_PEERS) * n * (p["seconds"] + p["warmup_s"] + 0.6),
    reps=3,
    notes=_gen_limit_notes,
    reading="The reading of `echo` applies. " + DEFLATE_TARGETS_READING,
)

IDLE_DEFLATE = Scenario(
    name="idle_memory_deflate",
    title="Idle connection memory with permessage-deflate",
    description=(
        "The method of `idle_memory` (server RSS before connecting and after N handshakes plus "
        "a settle delay, divided by N), with every connection offering permessage-deflate: "
        "blaze_green negotiates it and keeps no per-connection compression state (one shared "
        "compressor; client messages inflated on their own); websockets allocates a compressor "
        "and a decompressor per connection (context takeover); blaze_green with "
        "`compression=None` negotiates nothing."
    ),
    servers=DEFLATE_PEERS,
    default=dict(n=5000, settle_s=1.0, loadgen_flags=["-z"]),
    quick=dict(n=100, settle_s=0.2, loadgen_flags=["-z"]),
    cases=lambda p: [dict(case=f"{p['n']} idle, deflate offered")],
    run=_with_deflate(_idle_run, lambda case, p: p["n"]),
    check=_check_deflate(_idle_check),
    columns=[
        Column("kib_per_conn", "KiB/connection", "{:.1f}"),
        Column("deflate_conns", "deflate negotiated", "{:,.0f}", spread=False),
        Column("rss_before_mib", "RSS before MiB", "{:.1f}", spread=False),
        Column("rss_after_mib", "RSS after MiB", "{:.1f}", spread=False),
        Column("connect_s", "connect s", "{:.2f}", spread=False),
    ],
    primary="kib_per_conn",
    primary_label="KiB/connection",
    higher_is_better=False,
    command=lambda p: f"loadgen -z idle 127.0.0.1 PORT {p['n']} HOLD_S",
    estimate_s=lambda p, n: n * len(DEFLATE_PEERS) * (2 * p["settle_s"] + 1.0 + p["n"] / 1500),
    reps=2,
    reading=(
        "Lower is better. `deflate negotiated` counts the connections whose handshake accepted "
        "the offer (checked: all for the servers with compression, none without). "
        + DEFLATE_TARGETS_READING
    ),
    retry_on_steal=False,
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        HTTP_HELLO,
        ECHO,
        BIG,
        FANOUT,
        IDLE,
        CLUSTER,
        FANOUT_DEFLATE,
        ECHO_DEFLATE,
        IDLE_DEFLATE,
    ]
}


def join_blaze(name: str) -> None:
    """Put server `name` (a variant of blaze: --baseline, --metrics-off) in every scenario
    that has blaze, after blaze and the variants that joined before it (blaze, blaze_baseline,
    blaze_nometrics). Each scenario gets a new list: several share WS_PEERS."""
    for sc in SCENARIOS.values():
        if "blaze" in sc.servers and name not in sc.servers:
            i = sc.servers.index("blaze") + 1
            while i < len(sc.servers) and sc.servers[i] in VARIANTS:
                i += 1
            sc.servers = [*sc.servers[:i], name, *sc.servers[i:]]
