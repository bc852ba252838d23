"""`python -m bench`: run the scenarios, print a markdown report, write JSON, docs and charts.

For every scenario and repetition all of its servers are started fresh (each a
separate process on its own free port), then measured one after the other, the
order rotated per repetition (A B C, B C A, C A B, ...), so peers are always
compared within the same run and no server always goes first. Reported numbers
are the median over repetitions with min–max; ratios are computed from medians.

A full run (no --quick, no --scenarios/--servers subset) writes docs/BENCHMARKS.md
and one PNG chart per scenario in docs/bench/; other runs write them only when
--out-md PATH is given (charts then go to PATH's directory/bench/). --no-docs: never.

--baseline PATH adds the server blaze_baseline (the same bench/servers/blaze.py, importing
blaze_green from the checkout at PATH) to every scenario blaze is in, right after blaze, so
that `blaze ÷ blaze_baseline` compares two versions of the package in one run.
--metrics-off adds the server blaze_nometrics (the same script and package, with
App(metrics=False)) the same way: `blaze ÷ blaze_nometrics` is what counting costs. Both
options can be given together (blaze, blaze_baseline, blaze_nometrics side by side). Such
runs are never "full runs": they write docs/ only with --out-md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from . import harness, report
from .harness import GUNICORN_SPECS, REPO, SERVERS, BenchError, RedisProc, log
from .scenarios import SCENARIOS, Scenario, join_blaze

DEFAULT_JSON = harness.BENCH_DIR / "results" / "latest.json"
DEFAULT_MD = REPO / "docs" / "BENCHMARKS.md"
MIN_CPU_WINDOW_S = 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 1 repetition: a smoke run of about a minute",
    )
    ap.add_argument(
        "--scenarios", default="", help=f"comma-separated subset of: {', '.join(SCENARIOS)}"
    )
    ap.add_argument(
        "--servers",
        default="",
        help="comma-separated subset of servers (default: each scenario's own list)",
    )
    ap.add_argument(
        "--reps",
        type=int,
        default=None,
        help="repetitions per server in every scenario (default: each scenario's own, 2 or 3; "
        "1 with --quick)",
    )
    ap.add_argument(
        "--json",
        default=str(DEFAULT_JSON),
        help="where to write the JSON results (default %(default)s)",
    )
    ap.add_argument(
        "--out-md",
        default=None,
        help="write the markdown report here, and the charts into its directory's bench/ "
        "(default for a full run: docs/BENCHMARKS.md and docs/bench/)",
    )
    ap.add_argument(
        "--no-docs", action="store_true", help="write neither the markdown file nor the charts"
    )
    ap.add_argument(
        "--uvloop",
        action="store_true",
        help="(kept for compatibility: websockets on uvloop is now always measured)",
    )
    ap.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin servers to core 0 and load generators to core 1 (pinning needs 2 cores)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each measurement wait up to this many seconds for other processes' CPU use "
        f"to drop under 25%% of a core (default 5, at most {report.QUIET_TOTAL_S:.0f} s in all; "
        "0 with --quick)",
    )
    ap.add_argument(
        "--steal-retries",
        type=int,
        default=None,
        help=f"measure a run again, up to this many times, when the hypervisor's steal was above "
        f"{report.STEAL_RETRY_PCT:.0f}%% in it (default 2; 0 with --quick)",
    )
    ap.add_argument(
        "--baseline",
        default=None,
        metavar="PATH",
        help="also measure blaze_green from another checkout (say a git worktree of the commit "
        f"before a change) as the server {harness.BASELINE}, next to blaze in every scenario "
        "blaze is in; PATH is the tree that contains blaze_green/",
    )
    ap.add_argument(
        "--metrics-off",
        action="store_true",
        help=f"also measure this tree's blaze_green with App(metrics=False) as the server "
        f"{harness.NOMETRICS}, next to blaze in every scenario blaze is in (blaze ÷ "
        f"{harness.NOMETRICS}: the cost of the metrics)",
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run servers and load generators at this niceness, e.g. -10 to favour them over "
        "other work on a shared machine (needs root; slows everyone else down meanwhile)",
    )
    ns = ap.parse_args(argv)
    if ns.quiet_wait is None:
        ns.quiet_wait = 0.0 if ns.quick else 5.0
    ns.quiet_spent = 0.0
    if ns.steal_retries is None:
        ns.steal_retries = 0 if ns.quick else 2
    ns.scenario_list = [s.strip() for s in ns.scenarios.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in ns.scenario_list if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    ns.server_filter = [s.strip() for s in ns.servers.split(",") if s.strip()]
    if ns.baseline:
        try:
            harness.register_baseline(ns.baseline)
        except BenchError as e:
            ap.error(str(e))
        join_blaze(harness.BASELINE)
        log(
            f"bench: {harness.BASELINE} = bench/servers/blaze.py with blaze_green from "
            f"{harness.BASELINE_INFO['blaze_green_file']} ({harness.BASELINE_INFO['git']})"
        )
    if ns.metrics_off:
        try:
            harness.register_nometrics()
        except BenchError as e:
            ap.error(str(e))
        join_blaze(harness.NOMETRICS)
        log(
            f"bench: {harness.NOMETRICS} = bench/servers/blaze.py with this tree's blaze_green "
            f"and App(metrics=False) ({harness.METRICS_ENV}=0)"
        )
    for name, option in (
        (harness.BASELINE, "--baseline PATH"),
        (harness.NOMETRICS, "--metrics-off"),
    ):
        if name in ns.server_filter and name not in SERVERS:
            ap.error(f"server {name} exists only with {option}")
    bad = [s for s in ns.server_filter if s not in SERVERS]
    if bad:
        ap.error(f"unknown server(s): {', '.join(bad)}; choose from {', '.join(SERVERS)}")
    if ns.reps is not None and ns.reps < 1:
        ap.error("--reps must be at least 1")
    ns.full_run = (
        not ns.quick
        and not ns.scenarios.strip()
        and not ns.server_filter
        and not ns.baseline
        and not ns.metrics_off
    )
    if ns.no_docs:
        ns.md_path = None
    elif ns.out_md:
        ns.md_path = Path(ns.out_md).resolve()
    else:
        ns.md_path = DEFAULT_MD if ns.full_run else None
    return ns


def reps_for(sc: Scenario, ns: argparse.Namespace) -> int:
    if ns.reps is not None:
        return ns.reps
    return 1 if ns.quick else sc.reps


# --------------------------------------------------------------------------- metadata
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "") if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def _wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    r = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    first = (r.stdout or r.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


VERSIONED = [
    "blaze-green",
    "gevent",
    "greenlet",
    "gevent-websocket",
    "websockets",
    "uvloop",
    "starlette",
    "uvicorn",
    "flask",
    "flask-sock",
    "simple-websocket",
    "wsproto",
    "flask-socketio",
    "python-socketio",
    "python-engineio",
    "gunicorn",
    "redis",
    "matplotlib",
]


def collect_meta(ns: argparse.Namespace, command: str) -> dict:
    redis_version = RedisProc().version() if RedisProc.binary() else None
    return {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": _git_rev(),
        "quick": ns.quick,
        "reps": {s: reps_for(SCENARIOS[s], ns) for s in ns.scenario_list},
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "mem_gib": _mem_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nice": ns.nice,
        "pinning": (
            f"servers on core {sorted(harness.PIN['server'])[0]}, load generators on core "
            f"{sorted(harness.PIN['gen'])[0]}"
        )
        if harness.PIN["server"]
        else "off",
        "versions": {d: _version(d) for d in VERSIONED},
        "wrk": _wrk_version(),
        "redis_server": f"redis-server {redis_version}" if redis_version else None,
        "blaze_green_file": _blaze_file(),
        "baseline": dict(harness.BASELINE_INFO) or None,
        "metrics_off": dict(harness.NOMETRICS_INFO) or None,
        "variants": dict(harness.VARIANTS),  # variants of blaze -> summary-table title
    }


def _blaze_file() -> str | None:
    """Where the blaze server's blaze_green comes from (checked the way the server imports it)."""
    try:
        return harness.blaze_import_check(str(REPO))
    except BenchError:
        return None


# --------------------------------------------------------------------------- running
def servers_for(sc: Scenario, ns: argparse.Namespace) -> list[str]:
    names = list(sc.servers)
    if ns.server_filter:
        names = [n for n in names if n in ns.server_filter]
    return names


def _specs_to_check(sc: Scenario, name: str, params: dict) -> list:
    specs = [SERVERS[name]]
    if sc.spec_for is not None and name in GUNICORN_SPECS:
        specs.append(GUNICORN_SPECS[name])
    return specs


def fmt_progress(sc: Scenario, r: dict) -> str:
    parts = []
    for col in sc.columns[:3]:
        if col.key in r and isinstance(r[col.key], int | float):
            parts.append(f"{col.header} {col.fmt.format(r[col.key])}")
    cpu = []
    for key, lab in (
        ("server_cpu_pct", "server"),
        ("gen_cpu_pct", "gen"),
        ("aux_cpu_pct", "redis"),
        ("other_load_pct", "others"),
        ("steal_pct", "steal"),
    ):
        if key in r:
            cpu.append(f"{lab} {r[key]:.0f}%")
    if r.get("clients_per_worker") and len(r["clients_per_worker"]) > 1:
        parts.append("clients/worker " + "/".join(str(x) for x in r["clients_per_worker"]))
    return ", ".join(parts) + (f" [CPU {' / '.join(cpu)}]" if cpu else "")


class Progress:
    def __init__(self, total: int):
        self.total = max(total, 1)
        self.done = 0
        self.t0 = time.monotonic()

    def tag(self) -> str:
        self.done += 1
        el = time.monotonic() - self.t0
        return f"({self.done}/{self.total}, {int(el // 60)}:{int(el % 60):02d})"


def count_steps(ns: argparse.Namespace) -> int:
    n = 0
    for s in ns.scenario_list:
        sc = SCENARIOS[s]
        params = sc.quick if ns.quick else sc.default
        n += len(servers_for(sc, ns)) * len(sc.cases(params)) * reps_for(sc, ns)
    return n


def run_scenario(
    sc: Scenario, ns: argparse.Namespace, log_dir: Path, out: dict, progress: Progress
) -> None:
    params = sc.quick if ns.quick else sc.default
    reps = reps_for(sc, ns)
    names = servers_for(sc, ns)
    cases = sc.cases(params)
    entry = out.setdefault(
        sc.name,
        {
            "title": sc.title,
            "description": sc.description,
            "params": params,
            "command": sc.command(params),
            "servers": names,
            "cases": [c["case"] for c in cases],
            "reps": reps,
            "pinned": bool(sc.pin and harness.PIN["server"]),
            "rows": {},
        },
    )
    rows = entry["rows"]
    for case in cases:
        for name in names:
            rows.setdefault(
                f"{case['case']}|{name}",
                {"case": case["case"], "server": name, "runs": [], "failures": []},
            )
    if sc.name == "http_hello" and not shutil.which("wrk"):
        entry["skipped"] = "wrk is not installed (apt-get install -y wrk)"
        log(f"[{sc.name}] skipped: {entry['skipped']}")
        return
    avail = []
    for name in names:
        missing = None
        for spec in _specs_to_check(sc, name, params):
            missing = missing or harness.missing_module(spec)
        if missing and SERVERS[name].blaze_root:
            log(f"warning: {name}'s blaze_green does not import ({missing}); its runs will fail")
            missing = None
        if missing:
            for case in cases:
                rows[f"{case['case']}|{name}"]["skipped"] = f"not installed (no {missing})"
            log(f"[{sc.name}] {name}: skipped, {missing} is not installed")
            for _ in range(reps * len(cases)):
                progress.tag()
        else:
            avail.append(name)
    if not avail:
        return
    skip = sc.setup()
    if skip:
        entry["skipped"] = skip
        log(f"[{sc.name}] skipped: {skip}")
        return
    saved_pin = dict(harness.PIN)
    if not sc.pin:
        harness.configure_pinning(False)
    try:
        for rep in range(reps):
            k = rep % len(avail)
            order = avail[k:] + avail[:k]
            groups = [[c] for c in cases] if sc.spec_for else [cases]
            for group in groups:
                if sc.spec_for:
                    specs = [sc.spec_for(n, group[0]) for n in order]
                else:
                    specs = [SERVERS[n] for n in order]
                started = harness.start_servers(specs, log_dir)
                live = [s for s in started.values() if isinstance(s, harness.Server)]
                try:
                    for name in order:
                        for case in group:
                            measure(
                                sc, ns, params, rows, started[name], name, case, rep, reps, progress
                            )
                finally:
                    harness.stop_servers(live)
    finally:
        harness.PIN.update(saved_pin)
        sc.teardown()


def measure(sc, ns, params, rows, srv, name, case, rep, reps, progress) -> None:
    row = rows[f"{case['case']}|{name}"]
    tag = f"{progress.tag()} [{sc.name} {case['case']} rep {rep + 1}/{reps}] {name}"
    if isinstance(srv, BenchError):
        row["failures"].append({"rep": rep + 1, "error": str(srv)})
        log(f"{tag}: FAILED to start: {str(srv).splitlines()[0]}")
        return
    if not srv.alive():
        msg = f"server died before this run:\n{srv.log_tail()}"
        row["failures"].append({"rep": rep + 1, "error": msg})
        log(f"{tag}: FAILED: server died before this run")
        return
    quiet = None
    budget = min(ns.quiet_wait, report.QUIET_TOTAL_S - ns.quiet_spent)
    if budget > 0:
        quiet = harness.wait_for_quiet(budget)
        ns.quiet_spent += quiet["waited_s"]
    attempt = 0
    while True:
        try:
            r = run_once(sc, params, srv, name, case, rep, quiet, tag)
        except BenchError as e:
            row["failures"].append({"rep": rep + 1, "error": str(e)})
            log(f"{tag}: FAILED: {e}")
            return
        steal = r.get("steal_pct", 0)
        if steal <= report.STEAL_RETRY_PCT or attempt >= ns.steal_retries or not sc.retry_on_steal:
            break
        # the hypervisor took the CPU from this run, not the server: measure it again
        attempt += 1
        row.setdefault("discarded", []).append(r)
        log(f"{tag}: steal {steal:.0f}%: discarded, measuring again ({attempt}/{ns.steal_retries})")
        if ns.quiet_wait:
            time.sleep(min(ns.quiet_wait, 5.0))
    problem = sc.check(r)
    if problem is None and not srv.alive():
        problem = f"server exited during the run:\n{srv.log_tail()}"
    if problem:
        r["problem"] = problem
        row["failures"].append({"rep": rep + 1, "error": problem, "result": r})
        log(f"{tag}: FAILED: {problem.splitlines()[0]}")
        return
    row["runs"].append(r)
    log(f"{tag}: {fmt_progress(sc, r)}")


def run_once(sc, params, srv, name, case, rep, quiet, tag) -> dict:
    """One measurement with its CPU figures; raises BenchError when the load generator failed."""
    log(f"{tag} ...")
    t0 = time.monotonic()
    r = sc.run(srv, case, params)
    r["rep"] = rep + 1
    r["server"] = name
    r["wall_s"] = round(time.monotonic() - t0, 3)
    if srv.spec.gunicorn:
        r["gunicorn_workers"] = srv.spec.workers
    if quiet is not None:
        r["quiet_check"] = quiet
    other = harness.other_load_pct(r)
    if other is not None:
        r["other_load_pct"] = other
    if r.get("window_s", 1.0) < MIN_CPU_WINDOW_S:
        # /proc CPU times tick every 10 ms: a % over a few ms is noise
        for key in (
            "server_cpu_pct",
            "gen_cpu_pct",
            "aux_cpu_pct",
            "steal_pct",
            "idle_pct",
            "machine_busy_pct",
            "other_load_pct",
        ):
            r.pop(key, None)
        r["cpu_note"] = f"window under {MIN_CPU_WINDOW_S} s: CPU % not reported"
    return r


# --------------------------------------------------------------------------- summary
def summarize(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def add_summaries(out: dict) -> None:
    for name, entry in out.items():
        sc = SCENARIOS[name]
        for row in entry["rows"].values():
            row["summary"] = {}
            for col in sc.columns:
                vals = [r[col.key] for r in row["runs"] if isinstance(r.get(col.key), int | float)]
                if vals:
                    row["summary"][col.key] = summarize(vals)
            for key, _ in sc.extra_ratios:
                vals = [r[key] for r in row["runs"] if isinstance(r.get(key), int | float)]
                if vals and key not in row["summary"]:
                    row["summary"][key] = summarize(vals)
        # ratios blaze ÷ peer from medians, per case
        entry["ratios"] = {}
        for case in entry["cases"]:
            blaze = entry["rows"].get(f"{case}|blaze")
            if not blaze:
                continue
            for server in entry["servers"]:
                if server == "blaze":
                    continue
                peer = entry["rows"][f"{case}|{server}"]
                rat = {}
                for key in [sc.primary] + [k for k, _ in sc.extra_ratios]:
                    b = blaze["summary"].get(key, {}).get("median")
                    p = peer["summary"].get(key, {}).get("median")
                    if b is not None and p:
                        rat[key] = b / p
                if rat:
                    entry["ratios"][f"{case}|{server}"] = rat


KEEP_MARKER = "<!-- kept by python -m bench: the sections below come from other commands -->"


def write_docs(ns: argparse.Namespace, out: dict, meta: dict) -> str:
    """Charts into <md dir>/bench/, then the markdown (chart links relative to it)."""
    md_path: Path = ns.md_path
    chart_dir = md_path.parent / "bench"
    charts = report.write_charts(out, chart_dir, meta)
    rel = {name: os.path.relpath(p, md_path.parent) for name, p in charts.items()}
    text = report.markdown(out, meta, rel)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    # The hostile probes' section (python -m bench.hostile) is another command's output: keep it.
    kept = ""
    if md_path.exists():
        old = md_path.read_text()
        if KEEP_MARKER in old:
            kept = "\n" + old[old.index(KEEP_MARKER) :].rstrip("\n")
    md_path.write_text(text + kept + "\n")
    log(
        f"bench: markdown written to {md_path}"
        + (f", {len(charts)} chart(s) to {chart_dir}" if charts else "")
    )
    return text


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    command = "python -m bench" + (
        ""
        if argv is None and len(sys.argv) <= 1
        else " " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    harness.configure_pinning(not ns.no_pin)
    harness.PRIORITY["nice"] = ns.nice

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    t_start = time.monotonic()
    out: dict = {}
    interrupted = False
    meta = collect_meta(ns, command)
    meta["quiet_wait"] = ns.quiet_wait
    meta["steal_retries"] = ns.steal_retries
    log_dir = Path(tempfile.mkdtemp(prefix="blaze-bench-logs-"))
    try:
        harness.build_loadgen()
        est = sum(
            SCENARIOS[s].estimate_s(
                SCENARIOS[s].quick if ns.quick else SCENARIOS[s].default,
                reps_for(SCENARIOS[s], ns),
            )
            for s in ns.scenario_list
        )
        progress = Progress(count_steps(ns))
        log(
            f"bench: scenarios {', '.join(ns.scenario_list)}; "
            f"{'quick sizes, 1 repetition' if ns.quick else 'default sizes'}; "
            f"{progress.total} measurements, roughly {est / 60:.1f} min; server logs in {log_dir}"
        )
        if ns.md_path is None and not ns.no_docs:
            log("bench: partial run: docs/BENCHMARKS.md is left alone (--out-md PATH writes one)")
        for name in ns.scenario_list:
            run_scenario(SCENARIOS[name], ns, log_dir, out, progress)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping every process we started; the report covers what finished")
    finally:
        harness.REGISTRY.kill_all()
        for sc in SCENARIOS.values():
            with contextlib.suppress(Exception):
                sc.teardown()
        signal.signal(signal.SIGTERM, old_term)
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    meta["quiet_spent_s"] = round(ns.quiet_spent, 1)
    meta["interrupted"] = interrupted
    add_summaries(out)
    text = None
    if ns.md_path is not None and out:
        try:
            text = write_docs(ns, out, meta)
        except Exception as e:  # a report problem must not lose the JSON
            log(f"bench: writing the markdown/charts failed: {e!r}")
    if text is None:
        text = report.markdown(out, meta)
    print(text)
    path = Path(ns.json)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "scenarios": out}, indent=1, default=str) + "\n")
    log(f"bench: done in {meta['elapsed_s']:.0f} s; JSON written to {path}")
    # keep server logs only when something failed
    failed = any(row["failures"] for e in out.values() for row in e["rows"].values())
    if failed:
        log(f"bench: some runs failed; server logs kept in {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 130 if interrupted else 0
