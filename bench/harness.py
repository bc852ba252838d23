"""Process plumbing for the benchmark suite: servers, the C load generator, wrk.

Every server is a separate process on 127.0.0.1 and a free port, started by the
harness, waited for with a polling deadline and killed at the end (also on
Ctrl-C and exceptions: see ``ProcessRegistry``). Children get RLIMIT_NOFILE
raised and die with the harness (PR_SET_PDEATHSIG). With at least two cores,
servers are pinned to core 0 (once they listen) and load generators to core 1, so
the generator never takes CPU from the server (``--no-pin`` turns this off).

A server is either a script (``python bench/servers/X.py PORT``) or a gunicorn arbiter with
W workers (the cluster scenario); ``RedisProc`` is the throwaway redis-server of the cluster
scenario.

``--baseline PATH`` (``register_baseline``) adds the server ``blaze_baseline``: the same
``bench/servers/blaze.py``, started with PATH first on PYTHONPATH (and PATH as its working
directory) so that ``import blaze_green`` resolves to another checkout; blaze.py checks
``blaze_green.__file__`` against ``BENCH_BLAZE_ROOT`` and exits at start-up otherwise.
``--metrics-off`` (``register_nometrics``) adds ``blaze_nometrics``: the same script and this
repository's package, with ``BENCH_BLAZE_METRICS=0`` in its environment (``ServerSpec.env``),
for which blaze.py builds its app with ``App(..., metrics=False)``. Both are *variants* of
blaze (``VARIANTS``): they join every scenario blaze is in, right after it, and the report
gives ``blaze ÷ variant`` ratios and never counts them as a "best peer".

The permessage-deflate scenarios (``*_deflate``) have two servers of their own, always
registered: ``blaze_nodeflate`` (blaze.py with ``BENCH_BLAZE_COMPRESSION=0``, for which it
builds ``App(..., compression=None)``; a variant of blaze in the report, but it joins no other
scenario) and ``websockets_deflate`` (websockets_asyncio.py with
``BENCH_WS_COMPRESSION=deflate``: the library's default permessage-deflate). The load
generator is linked with zlib (``-lz``) to inflate what they send.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SERVERS_DIR = BENCH_DIR / "servers"
BUILD_DIR = BENCH_DIR / "build"
LOADGEN_SRC = BENCH_DIR / "loadgen.c"
LOADGEN = BUILD_DIR / "loadgen"
NOFILE = 65536
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class BenchError(Exception):
    """A run that could not produce a measurement (the message says why)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- children
_libc = None
with contextlib.suppress(OSError):
    _libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1

PIN = {"server": None, "gen": None}
PRIORITY = {"nice": 0}  # niceness for every child (negative = favoured; needs root)


def configure_pinning(enabled: bool) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if enabled and len(cpus) >= 2:
        PIN["server"], PIN["gen"] = {cpus[0]}, {cpus[1]}
    else:
        PIN["server"] = PIN["gen"] = None


def pin_process(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of a running process (servers are pinned once they listen, so
    that several of them can start in parallel on all cores)."""
    if not cpus:
        return
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)


def _preexec(role: str, pin: bool = True):
    cpus = PIN.get(role) if pin else None
    nice = PRIORITY["nice"]

    def fn():
        if nice:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, nice)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, max(hard, NOFILE)))
        except (ValueError, OSError):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if _libc is not None:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if cpus:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, cpus)

    return fn


class ProcessRegistry:
    """Every child process we start; ``kill_all`` ends them (by pid, ours only)."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.extra_pids: set[int] = set()  # gunicorn workers (grandchildren)

    def add(self, p: subprocess.Popen) -> subprocess.Popen:
        self.procs.append(p)
        return p

    def forget(self, p: subprocess.Popen) -> None:
        with contextlib.suppress(ValueError):
            self.procs.remove(p)

    def kill_all(self) -> None:
        for p in list(self.procs):
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.kill()
        for p in list(self.procs):
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        self.procs.clear()
        for pid in list(self.extra_pids):
            if pid_alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self.extra_pids.clear()


REGISTRY = ProcessRegistry()


# --------------------------------------------------------------------------- /proc
def proc_cpu_s(pid: int) -> float | None:
    """utime+stime of a process (all its threads) in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def proc_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


NCPU = os.cpu_count() or 1


def machine_stat() -> tuple[int, int, int, int]:
    """(total, steal, idle, busy) jiffies over all CPUs from /proc/stat; busy is
    user+nice+system, i.e. every process on the machine, ours and others'."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[7], v[3] + v[4], v[0] + v[1] + v[2]


def machine_pcts(a, b) -> dict:
    """steal_pct, idle_pct (% of all CPU time) and machine_busy_pct (% of one core)."""
    dt = b[0] - a[0]
    if dt <= 0:
        return {}
    return {
        "steal_pct": 100.0 * (b[1] - a[1]) / dt,
        "idle_pct": 100.0 * (b[2] - a[2]) / dt,
        "machine_busy_pct": 100.0 * NCPU * (b[3] - a[3]) / dt,
        "ncpu": NCPU,
    }


def other_load_pct(r: dict) -> float | None:
    """CPU (% of one core) used during a run's window by processes other than the
    measured server, the load generator and our helpers (Redis): other people's work on a
    shared machine."""
    if "machine_busy_pct" not in r or "server_cpu_pct" not in r or "gen_cpu_pct" not in r:
        return None
    ours = r["server_cpu_pct"] + r["gen_cpu_pct"] + r.get("aux_cpu_pct", 0.0)
    return max(0.0, r["machine_busy_pct"] - ours)


def wait_for_quiet(max_wait_s: float, threshold_pct: float = 25.0, sample_s: float = 0.5) -> dict:
    """Wait (up to max_wait_s) until the machine's CPU use, all processes together, stays
    under threshold_pct of one core for one sample: our servers are idle between runs,
    so what is left is someone else's load. Returns what was seen."""
    t0 = time.monotonic()
    first = None
    announced = False
    while True:
        a = machine_stat()
        time.sleep(sample_s)
        load = machine_pcts(a, machine_stat()).get("machine_busy_pct", 0.0)
        if first is None:
            first = load
        waited = time.monotonic() - t0
        if load < threshold_pct or waited >= max_wait_s:
            return {
                "load_before_pct": round(load, 1),
                "load_at_first_check_pct": round(first, 1),
                "waited_s": round(waited, 1),
                "quiet": load < threshold_pct,
            }
        if not announced:
            log(
                f"  machine busy ({load:.0f}% of a core used by other processes); waiting up to "
                f"{max_wait_s:.0f} s for it to calm down"
            )
            announced = True


# --------------------------------------------------------------------------- ports
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listens(pid: int, port: int) -> bool:
    """True when process `pid` itself has a listening TCP socket on 127.0.0.1:port (so
    another program that grabbed the same port on a shared machine is never measured,
    and no probe connection shows up in the server's logs)."""
    inodes = set()
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":  # 0A = LISTEN
                    inodes.add(f"socket:[{parts[9]}]")
    except OSError:
        return False
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


# --------------------------------------------------------------------------- servers
@dataclass(frozen=True)
class ServerSpec:
    name: str
    script: str
    args: tuple[str, ...] = ()
    label: str = ""
    sio: bool = False  # speaks Socket.IO: the load generator runs with -s
    module: str = ""  # python module (for importability checks and versions)
    # gunicorn (cluster): worker class, worker count, and the environment variable that
    # gets the Redis URL; ready_log: a log line every worker prints once it is ready
    gunicorn_worker: str = ""
    workers: int = 1
    broker_env: str = ""
    redis_channel: str = ""
    ready_log: str = ""
    redis_url: str = ""  # filled in per run by the cluster scenario
    # blaze servers: the tree whose blaze_green the child must import (first on PYTHONPATH,
    # the child's working directory, and checked by blaze.py through BENCH_BLAZE_ROOT)
    blaze_root: str = ""
    # extra environment of the child, (NAME, VALUE) pairs set after the harness has removed
    # the variables it owns (CHILD_ENV_OWNED), e.g. (("BENCH_BLAZE_METRICS", "0"),)
    env: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> Path:
        return SERVERS_DIR / self.script

    @property
    def gunicorn(self) -> bool:
        return bool(self.gunicorn_worker)

    def with_(self, **kw) -> ServerSpec:
        return replace(self, **kw)


SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in [
        ServerSpec(
            "blaze", "blaze.py", label="blaze_green", module="blaze_green", blaze_root=str(REPO)
        ),
        ServerSpec(
            "websockets",
            "websockets_asyncio.py",
            label="websockets (asyncio)",
            module="websockets",
        ),
        ServerSpec(
            "websockets_deflate",
            "websockets_asyncio.py",
            label="websockets (asyncio), permessage-deflate",
            module="websockets",
            env=(("BENCH_WS_COMPRESSION", "deflate"),),
        ),
        ServerSpec(
            "websockets_uvloop",
            "websockets_asyncio.py",
            ("--uvloop",),
            label="websockets (uvloop)",
            module="websockets,uvloop",
        ),
        ServerSpec(
            "starlette_uvicorn",
            "starlette_uvicorn.py",
            label="Starlette on uvicorn (uvloop)",
            module="starlette,uvicorn,uvloop",
        ),
        ServerSpec(
            "flask_sock",
            "flask_sock_gevent.py",
            label="Flask-Sock on gevent",
            module="flask_sock",
        ),
        ServerSpec(
            "flask_socketio",
            "flask_socketio_gevent.py",
            label="Flask-SocketIO on gevent",
            sio=True,
            module="flask_socketio",
        ),
        ServerSpec(
            "gevent_websocket_bare",
            "gevent_websocket_bare.py",
            label="gevent-websocket (bare)",
            module="geventwebsocket",
        ),
        ServerSpec("raw_gevent", "raw_gevent.py", label="raw gevent (hand-rolled WS, ceiling)"),
        ServerSpec("wsgi_bare", "wsgi_bare.py", label="bare WSGI on gevent.pywsgi"),
        ServerSpec(
            "flask_pywsgi", "flask_pywsgi.py", label="Flask on gevent.pywsgi", module="flask"
        ),
    ]
}

# The cluster scenario's multi-process variants (W workers filled in per case).
GUNICORN_SPECS: dict[str, ServerSpec] = {
    "blaze": ServerSpec(
        "blaze",
        "blaze.py",
        label="blaze_green",
        module="blaze_green,gunicorn,redis",
        gunicorn_worker="blaze_green.worker.GeventWebSocketWorker",
        broker_env="BLAZE_BROKER_URL",
        redis_channel="blaze_green:bcast:0:/feed",  # one channel per path, while it has sessions
        ready_log=": subscribed to ",  # "broker URL: subscribed to CHANNEL as node ID"
        blaze_root=str(REPO),
    ),
    "flask_socketio": ServerSpec(
        "flask_socketio",
        "flask_socketio_gevent.py",
        label="Flask-SocketIO on gevent",
        sio=True,
        module="flask_socketio,gunicorn,redis",
        gunicorn_worker="geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
        broker_env="BENCH_SIO_MESSAGE_QUEUE",
        redis_channel="flask-socketio",
        ready_log="Booting worker",
    ),
}

_importable_cache: dict[tuple[str, str], str | None] = {}

# environment variables the harness sets per server: never inherited from its own environment
CHILD_ENV_OWNED = (
    "BENCH_BLAZE_ROOT",
    "BENCH_BLAZE_METRICS",
    "BENCH_BLAZE_COMPRESSION",
    "BENCH_WS_COMPRESSION",
    "BLAZE_BROKER_URL",
    "BENCH_SIO_MESSAGE_QUEUE",
    "BLAZE_GREEN_NO_PATCH",  # set in test processes; servers must patch
    "PYTHONDEVMODE",
)


def _pythonpath(spec: ServerSpec) -> str:
    """PYTHONPATH for a child: the spec's blaze tree (if any), the repository, then whatever
    the harness itself was given."""
    parts = [spec.blaze_root, str(REPO), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    out: list[str] = []
    for p in parts:
        if p and p not in out:
            out.append(p)
    return os.pathsep.join(out)


def _child_cwd(spec: ServerSpec) -> str:
    # `python -c` and `python -m gunicorn` put the working directory first on sys.path, ahead
    # of PYTHONPATH: a baseline run from the repository would import the repository's package
    return spec.blaze_root or str(REPO)


def missing_module(spec: ServerSpec) -> str | None:
    """The first of the spec's modules that does not import in a child (None: all do). A
    peer whose package is not installed is reported as "not installed", not as failed."""
    if not spec.module:
        return None
    for mod in spec.module.split(","):
        key = (spec.blaze_root, mod)
        if key not in _importable_cache:
            env = dict(os.environ, PYTHONPATH=_pythonpath(spec), BLAZE_GREEN_NO_PATCH="1")
            r = subprocess.run(
                [sys.executable, "-c", f"import {mod}"],
                cwd=_child_cwd(spec),
                env=env,
                capture_output=True,
                text=True,
            )
            _importable_cache[key] = (
                None
                if r.returncode == 0
                else (r.stderr.strip().splitlines() or ["import failed"])[-1]
            )
        if _importable_cache[key] is not None:
            return mod
    return None


# --------------------------------------------------------------------------- variants of blaze
BASELINE = "blaze_baseline"  # --baseline PATH: the package from another checkout
NOMETRICS = "blaze_nometrics"  # --metrics-off: this package with App(metrics=False)
METRICS_ENV = "BENCH_BLAZE_METRICS"  # "0": blaze.py passes metrics=False to App
# registered variants of blaze, in the order they joined: server name -> short title for the
# report's summary table ("baseline" -> columns "baseline" and "blaze ÷ baseline")
VARIANTS: dict[str, str] = {}
BASELINE_INFO: dict[str, str] = {}  # filled in by register_baseline (for the report's meta)
NOMETRICS_INFO: dict[str, str] = {}  # filled in by register_nometrics (for the report's meta)

# The permessage-deflate scenarios' blaze without compression: always registered, in those
# scenarios only (it never joins the others), a variant of blaze for the report.
NODEFLATE = "blaze_nodeflate"
COMPRESSION_ENV = "BENCH_BLAZE_COMPRESSION"  # "0": blaze.py passes compression=None to App
SERVERS[NODEFLATE] = SERVERS["blaze"].with_(
    name=NODEFLATE, label="blaze_green, compression off", env=((COMPRESSION_ENV, "0"),)
)
VARIANTS[NODEFLATE] = "compression off"


def _register_variant(name: str, column: str, **changes) -> ServerSpec:
    """Add server `name`: the blaze spec (and its gunicorn form, for the cluster scenario)
    with `changes`; the runner puts it next to blaze in every scenario (join_blaze)."""
    SERVERS[name] = SERVERS["blaze"].with_(name=name, **changes)
    GUNICORN_SPECS[name] = GUNICORN_SPECS["blaze"].with_(name=name, **changes)
    VARIANTS[name] = column
    return SERVERS[name]


def _tree_rev(path: Path) -> str:
    """Short commit of a checkout (+ "-dirty" with uncommitted changes), or "no git"."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        if not rev:
            return "no git"
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "no git"


_WHERE = "import os, blaze_green; print(os.path.realpath(blaze_green.__file__))"


def blaze_import_check(root: str) -> str:
    """Import blaze_green in a child the way a server with blaze_root=root does; return the
    real path of blaze_green/__init__.py, or raise BenchError when the import fails or resolves
    outside `root`."""
    spec = ServerSpec("check", "blaze.py", blaze_root=root)
    env = dict(os.environ, PYTHONPATH=_pythonpath(spec), BLAZE_GREEN_NO_PATCH="1")
    r = subprocess.run(
        [sys.executable, "-c", _WHERE],
        cwd=_child_cwd(spec),
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise BenchError(f"blaze_green does not import from {root}:\n{r.stderr.strip()[-1500:]}")
    got = r.stdout.strip().splitlines()[-1]
    real_root = os.path.realpath(root)
    if os.path.commonpath([got, real_root]) != real_root:
        raise BenchError(f"with PYTHONPATH={root} first, blaze_green was imported from {got}")
    return got


def register_baseline(path: str) -> ServerSpec:
    """Add the server `blaze_baseline`: bench/servers/blaze.py importing blaze_green from the
    checkout at `path` (to SERVERS, and to GUNICORN_SPECS for the cluster scenario). Raises
    BenchError when `path` holds no importable blaze_green of its own."""
    root = Path(path).expanduser().resolve()
    if not (root / "blaze_green" / "__init__.py").is_file():
        raise BenchError(f"--baseline {path}: no blaze_green/__init__.py under {root}")
    if root == REPO.resolve():
        raise BenchError(f"--baseline {path} is this repository: nothing to compare")
    init = blaze_import_check(str(root))
    rev = _tree_rev(root)
    label = f"blaze_green baseline ({root.name} @ {rev})"
    spec = _register_variant(BASELINE, "baseline", label=label, blaze_root=str(root))
    BASELINE_INFO.clear()
    BASELINE_INFO.update(path=str(root), git=rev, blaze_green_file=init, label=label)
    return spec


_METRICS_OFF_CHECK = (
    "from blaze_green import App; s = App(metrics=False).stats(); "
    "assert s == {}, f'stats() with metrics=False: {s!r}'"
)


def register_nometrics() -> ServerSpec:
    """Add the server `blaze_nometrics`: bench/servers/blaze.py with this repository's
    blaze_green and METRICS_ENV=0, for which blaze.py builds `App(..., metrics=False)`.
    Raises BenchError when this tree's App has no such option (or still counts with it)."""
    spec = SERVERS["blaze"].with_(env=((METRICS_ENV, "0"),))
    env = dict(child_env(spec), BLAZE_GREEN_NO_PATCH="1")
    r = subprocess.run(
        [sys.executable, "-c", _METRICS_OFF_CHECK],
        cwd=_child_cwd(spec),
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise BenchError(
            "--metrics-off: App(metrics=False) fails in this tree:\n" + r.stderr.strip()[-1500:]
        )
    label = "blaze_green, metrics off"
    spec = _register_variant(NOMETRICS, "metrics off", label=label, env=spec.env)
    NOMETRICS_INFO.clear()
    NOMETRICS_INFO.update(env=f"{METRICS_ENV}=0", option="App(metrics=False)", label=label)
    return spec


@dataclass
class Server:
    spec: ServerSpec
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    _log_file: object = None
    start_s: float = 0.0
    worker_pids: list[int] = field(default_factory=list)  # gunicorn workers

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def cpu_pids(self) -> list[int]:
        """The processes doing the work: gunicorn's workers, else the server itself."""
        return self.worker_pids or [self.pid]

    def log_count(self, text: str) -> int:
        if not self.log_path:
            return 0
        try:
            return self.log_path.read_text(errors="replace").count(text)
        except OSError:
            return 0

    def ready(self) -> bool:
        """Listening, and for gunicorn: all workers forked and (ready_log) ready."""
        if not listens(self.pid, self.port):
            return False
        if not self.spec.gunicorn:
            return True
        kids = children(self.pid)
        if len(kids) < self.spec.workers:
            return False
        if self.spec.ready_log and self.log_count(self.spec.ready_log) < self.spec.workers:
            return False
        self.worker_pids = kids
        for pid in kids:
            remember(pid)
        REGISTRY.extra_pids.update(kids)
        return True

    def log_tail(self, n: int = 15) -> str:
        if not self.log_path:
            return ""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def child_env(spec: ServerSpec) -> dict[str, str]:
    """The environment of a server process: ours without the variables the harness owns,
    then the spec's blaze tree (BENCH_BLAZE_ROOT) and its own extra variables (spec.env)."""
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_OWNED}
    env["PYTHONPATH"] = _pythonpath(spec)
    env["PYTHONUNBUFFERED"] = "1"
    if spec.blaze_root:
        env["BENCH_BLAZE_ROOT"] = spec.blaze_root  # blaze.py exits unless it imported this tree
    env.update(spec.env)
    return env


def _spawn(spec: ServerSpec, port: int, log_dir: Path) -> Server:
    log_path = log_dir / f"{spec.name}-{port}.log"
    f = open(log_path, "wb")  # noqa: SIM115 (closed in stop_servers)
    env = child_env(spec)
    if spec.gunicorn:
        if spec.broker_env and spec.redis_url:
            env[spec.broker_env] = spec.redis_url
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            spec.gunicorn_worker,
            "-w",
            str(spec.workers),
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(SERVERS_DIR),
            "--log-level",
            "info",
            "--backlog",
            "1024",
            # gevent-websocket's worker keeps each WebSocket in its connection pool
            # (default 1000 per worker): with 1,000 subscribers per worker the control
            # connection would never be served
            "--worker-connections",
            "10000",
            "--graceful-timeout",
            "3",
            *gunicorn_extra_args(),
            f"{spec.path.stem}:app",
        ]
    else:
        cmd = [sys.executable, str(spec.path), str(port), *spec.args]
    proc = subprocess.Popen(
        cmd,
        cwd=_child_cwd(spec),
        stdin=subprocess.DEVNULL,
        stdout=f,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=_preexec("server", pin=False),
    )
    REGISTRY.add(proc)
    return Server(spec, port, proc, log_path, f)


def start_servers(
    specs: list[ServerSpec], log_dir: Path, deadline_s: float = 20.0, attempts: int = 3
) -> dict[str, Server | BenchError]:
    """Start all servers at once (they are idle until measured) and wait for each
    to accept TCP connections. A server that exits early (say the port was taken
    between picking and binding it) is retried on a new port."""
    result: dict[str, Server | BenchError] = {}
    starting: dict[str, Server] = {}
    t0 = time.monotonic()
    for spec in specs:
        starting[spec.name] = _spawn(spec, free_port(), log_dir)
    tries = {name: 1 for name in starting}
    deadline = t0 + deadline_s
    while starting:
        for name, srv in list(starting.items()):
            if srv.proc.poll() is not None:
                tail = srv.log_tail()
                _close_log(srv)
                REGISTRY.forget(srv.proc)
                if tries[name] < attempts and "address already in use" in tail.lower():
                    tries[name] += 1
                    starting[name] = _spawn(srv.spec, free_port(), log_dir)
                    continue
                result[name] = BenchError(
                    f"{name} exited with status {srv.proc.returncode} during start-up:\n{tail}"
                )
                del starting[name]
            elif srv.ready():
                srv.start_s = time.monotonic() - t0
                for pid in [srv.pid, *srv.worker_pids]:
                    pin_process(pid, PIN["server"])
                result[name] = srv
                del starting[name]
        if starting and time.monotonic() > deadline:
            for name, srv in starting.items():
                tail = srv.log_tail()
                stop_servers([srv])
                result[name] = BenchError(
                    f"{name} did not listen within {deadline_s:.0f} s:\n{tail}"
                )
            break
        if starting:
            time.sleep(0.02)
    return result


def _close_log(srv: Server) -> None:
    if srv._log_file is not None:
        with contextlib.suppress(Exception):
            srv._log_file.close()
        srv._log_file = None


def stop_servers(servers: list[Server], grace_s: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after grace_s (gunicorn: 8 s, its workers' graceful stop); a
    gunicorn worker still alive after its arbiter is gone is killed by its pid (our blaze
    worker does not watch its parent)."""
    live = [s for s in servers if s.proc is not None]
    workers: list[int] = []
    for s in live:
        if s.spec.gunicorn and s.proc.poll() is None:
            s.worker_pids = sorted(set(s.worker_pids) | set(children(s.pid)))
            for pid in s.worker_pids:
                remember(pid)
        workers += s.worker_pids
        REGISTRY.extra_pids.update(s.worker_pids)
        if s.proc.poll() is None:
            with contextlib.suppress(OSError):
                s.proc.terminate()
    deadline = time.monotonic() + max(
        [grace_s] + [8.0 for s in live if s.spec.gunicorn], default=grace_s
    )
    for s in live:
        try:
            s.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                s.proc.kill()
            with contextlib.suppress(Exception):
                s.proc.wait(timeout=5)
        REGISTRY.forget(s.proc)
        _close_log(s)
    for pid in workers:
        if pid_alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        REGISTRY.extra_pids.discard(pid)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """When the process started (field 22 of /proc/PID/stat): with the pid, its identity."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


_STARTS: dict[int, int | None] = {}  # worker pid -> start time seen when we found it


def remember(pid: int) -> None:
    _STARTS.setdefault(pid, start_ticks(pid))


def pid_alive(pid: int) -> bool:
    """Alive, not a zombie, and the same process we found (not a reused pid)."""
    fields = _stat_fields(pid)
    if not fields or fields[0] == "Z":
        return False
    return pid not in _STARTS or _STARTS[pid] == int(fields[19])


def children(pid: int) -> list[int]:
    """Child process ids of `pid` (all its threads), from /proc."""
    kids: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
            kids += [int(x) for x in f.read().split()]
    return sorted(set(kids))


def connections_per_pid(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections on 127.0.0.1:port held by each of `pids` (how the kernel
    spread the clients over gunicorn's workers)."""
    inodes = set()
    want = f"0100007F:{port:04X}"
    with contextlib.suppress(OSError), open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want and parts[3] == "01":
                inodes.add(f"socket:[{parts[9]}]")
    out = {}
    for pid in pids:
        n = 0
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            fds = []
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    n += 1
        out[pid] = n
    return out


_gunicorn_args: list[str] | None = None


def gunicorn_extra_args() -> list[str]:
    """--no-control-socket where gunicorn has one (25+): several arbiters at once would
    otherwise share ~/.gunicorn/gunicorn.ctl."""
    global _gunicorn_args
    if _gunicorn_args is None:
        r = subprocess.run(
            [sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True
        )
        _gunicorn_args = ["--no-control-socket"] if "--no-control-socket" in r.stdout else []
    return _gunicorn_args


# --------------------------------------------------------------------------- redis
class RedisProc:
    """`redis-server --port P --bind 127.0.0.1 --save '' --appendonly no` on a free port,
    for the cluster scenario; stopped (SIGKILL, its pid) at the end."""

    def __init__(self) -> None:
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.dir = tempfile.mkdtemp(prefix="blaze-bench-redis-")

    @staticmethod
    def binary() -> str | None:
        return shutil.which("redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def version(self) -> str | None:
        b = self.binary()
        if not b:
            return None
        out = subprocess.run([b, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"v=(\S+)", out)
        return m.group(1) if m else out.strip()

    def start(self, timeout: float = 10.0, cluster: bool = False) -> RedisProc:
        """cluster=True: a Redis Cluster node (`--cluster-enabled yes`, node timeout 1 s) on a
        port whose bus port (port + 10000) exists; bench/rooms.py makes the cluster."""
        binary = self.binary()
        if binary is None:
            raise BenchError("redis-server is not installed")
        for _ in range(10 if cluster else 3):
            self.port = free_port()
            if cluster and self.port + 10000 > 65535:
                continue
            extra = []
            if cluster:
                extra = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-config-file",
                    f"nodes-{self.port}.conf",
                ]
            self.proc = REGISTRY.add(
                subprocess.Popen(
                    [
                        binary,
                        "--port",
                        str(self.port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        self.dir,
                        "--loglevel",
                        "warning",
                        # the default limit (32 MiB) could cut a slow subscriber off mid-run
                        "--client-output-buffer-limit",
                        "pubsub 256mb 64mb 60",
                        *extra,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=_preexec("server", pin=False),
                )
            )
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                if self.command("PING").startswith(b"+PONG"):
                    return self
                time.sleep(0.02)
            self.stop(keep_dir=True)
        raise BenchError("redis-server did not start")

    def command(self, *args: str) -> bytes:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(" ".join(args).encode() + b"\r\n")
                return s.recv(65536)
        except OSError:
            return b""

    def numsub(self, channel: str) -> int:
        """Subscribers of a pub/sub channel (PUBSUB NUMSUB)."""
        reply = self.command("PUBSUB", "NUMSUB", channel)
        m = re.findall(rb":(\d+)\r\n", reply)
        return int(m[-1]) if m else 0

    def stop(self, keep_dir: bool = False) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(OSError):
                    self.proc.kill()
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=5)
            REGISTRY.forget(self.proc)
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- loadgen
def build_loadgen() -> Path:
    """Compile bench/loadgen.c when the binary is missing or older than the source."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    if LOADGEN.exists() and LOADGEN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return LOADGEN
    # -lz: permessage-deflate (-z) inflates what the server sends and deflates what it sends
    cmd = ["gcc", "-O2", "-o", str(LOADGEN), str(LOADGEN_SRC), "-lz"]
    log("building load generator: " + " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        if "zlib.h" in r.stderr or "-lz" in r.stderr:
            raise BenchError(
                "the load generator needs zlib's headers and library (for permessage-deflate), "
                "which gcc did not find: install them with `apt-get install -y zlib1g-dev` "
                f"(/usr/include/zlib.h).\ngcc said:\n{r.stderr}"
            )
        raise BenchError(f"gcc failed:\n{r.stderr}")
    return LOADGEN


@dataclass
class GenRun:
    proc: subprocess.Popen
    cmd: list[str]
    timer: threading.Timer | None = None
    lines: list[str] = field(default_factory=list)

    def readline(self) -> str:
        line = self.proc.stdout.readline()
        if line:
            self.lines.append(line)
        return line

    def finish(self) -> dict:
        for line in self.proc.stdout:
            self.lines.append(line)
        err = self.proc.stderr.read()
        rc = self.proc.wait()
        if self.timer:
            self.timer.cancel()
        REGISTRY.forget(self.proc)
        result = None
        for line in reversed(self.lines):
            line = line.strip()
            if line.startswith("{") and '"mode"' in line:
                result = json.loads(line)
                break
        if result is None:
            raise BenchError(f"load generator gave no result (exit {rc}): {err.strip()[-500:]}")
        result["exit_status"] = rc
        if err.strip():
            result["stderr"] = err.strip()[-500:]
        return result


def start_loadgen(args: list[str], hard_timeout_s: float) -> GenRun:
    cmd = [str(LOADGEN), *args]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_preexec("gen"),
    )
    REGISTRY.add(proc)
    timer = threading.Timer(hard_timeout_s, lambda: proc.poll() is None and proc.kill())
    timer.daemon = True
    timer.start()
    return GenRun(proc, cmd, timer)


def run_loadgen(args: list[str], hard_timeout_s: float) -> dict:
    run = start_loadgen(args, hard_timeout_s)
    result = run.finish()
    result["command"] = "loadgen " + " ".join(args)
    return result


# --------------------------------------------------------------------------- wrk
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    for unit in ("us", "ms", "s", "m"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * _UNITS[unit]
    return float(text)


def parse_wrk(out: str) -> dict:
    res: dict = {}
    in_dist = False
    for raw in out.splitlines():
        line = raw.strip()
        if line.startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist:
            parts = line.split()
            if len(parts) == 2 and parts[0].endswith("%"):
                res[f"p{parts[0][:-1].split('.')[0]}_ms"] = _ms(parts[1])
                continue
            in_dist = False
        if line.startswith("Requests/sec:"):
            res["requests_per_s"] = float(line.split()[1])
        elif "requests in" in line:
            res["requests"] = int(line.split()[0])
        elif line.startswith("Non-2xx or 3xx responses:"):
            res["non_2xx"] = int(line.split()[-1])
        elif line.startswith("Socket errors:"):
            res["socket_errors"] = line.split(":", 1)[1].strip()
        elif line.startswith("Latency") and "distribution" not in line.lower():
            parts = line.split()
            if len(parts) >= 4:
                res["avg_ms"] = _ms(parts[1])
                res["max_ms"] = _ms(parts[3])
    if "requests_per_s" not in res:
        raise BenchError(f"could not parse wrk output:\n{out[-800:]}")
    return res


def run_wrk(server: Server, threads: int, conns: int, duration_s: float, path: str) -> dict:
    url = f"http://127.0.0.1:{server.port}{path}"
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration_s:g}s", "--latency", url]
    with tempfile.TemporaryFile("w+") as out:
        st0 = machine_stat()
        s0 = proc_cpu_s(server.pid)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_preexec("gen"),
        )
        REGISTRY.add(proc)
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except ChildProcessError:
            status, ru = 0, None
        proc.returncode = os.waitstatus_to_exitcode(status)
        t1 = time.monotonic()
        s1 = proc_cpu_s(server.pid)
        st1 = machine_stat()
        REGISTRY.forget(proc)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}: {text[-500:]}")
    res = parse_wrk(text)
    window = t1 - t0
    res.update(window_s=window, command=" ".join(cmd).replace(str(server.port), "PORT"))
    res.update(machine_pcts(st0, st1))
    if ru is not None:
        res["gen_cpu_s"] = ru.ru_utime + ru.ru_stime
        res["gen_cpu_pct"] = 100.0 * res["gen_cpu_s"] / window
    if s0 is not None and s1 is not None:
        res["server_cpu_s"] = s1 - s0
        res["server_cpu_pct"] = 100.0 * (s1 - s0) / window
    return res
