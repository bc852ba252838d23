"""`python -m bench`: run the scenarios, print a markdown report, write JSON.

For every scenario and repetition all of its servers are started fresh (each a
separate process on its own free port), then measured one after the other, the
order rotated per repetition (A B C, B C A, C A B, ...), so peers are always
compared within the same run and no server always goes first. Reported numbers
are the median over repetitions with min–max; ratios are computed from medians.
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

from . import harness
from .harness import REPO, SERVERS, BenchError, log
from .scenarios import SCENARIOS, Scenario

DEFAULT_JSON = harness.BENCH_DIR / "results" / "latest.json"
MIN_CPU_WINDOW_S = 0.5
DISTURBED_PCT = 25.0
QUIET_TOTAL_S = 120.0  # total time a run may spend waiting for a quiet machine


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 1 repetition: a smoke run of about 15 s",
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
        "--reps", type=int, default=None, help="repetitions per server (default 3; 1 with --quick)"
    )
    ap.add_argument(
        "--json",
        default=str(DEFAULT_JSON),
        help="where to write the JSON results (default %(default)s)",
    )
    ap.add_argument(
        "--uvloop",
        action="store_true",
        help="also measure websockets on uvloop in the WebSocket scenarios",
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
        "to drop under 25%% of a core (default 10, at most 120 s in all; 0 with --quick)",
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
        ns.quiet_wait = 0.0 if ns.quick else 10.0
    ns.quiet_spent = 0.0
    ns.scenario_list = [s.strip() for s in ns.scenarios.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in ns.scenario_list if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    ns.server_filter = [s.strip() for s in ns.servers.split(",") if s.strip()]
    bad = [s for s in ns.server_filter if s not in SERVERS]
    if bad:
        ap.error(f"unknown server(s): {', '.join(bad)}; choose from {', '.join(SERVERS)}")
    if ns.reps is None:
        ns.reps = 1 if ns.quick else 3
    if ns.reps < 1:
        ap.error("--reps must be at least 1")
    return ns


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


def _wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    r = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    first = (r.stdout or r.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def collect_meta(ns: argparse.Namespace, command: str) -> dict:
    return {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": _git_rev(),
        "quick": ns.quick,
        "reps": ns.reps,
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nice": ns.nice,
        "pinning": (
            f"servers on core {sorted(harness.PIN['server'])[0]}, load generators on core "
            f"{sorted(harness.PIN['gen'])[0]}"
        )
        if harness.PIN["server"]
        else "off",
        "versions": {
            d: _version(d)
            for d in [
                "gevent",
                "greenlet",
                "gevent-websocket",
                "websockets",
                "flask",
                "uvloop",
                "blaze-green",
            ]
        },
        "wrk": _wrk_version(),
    }


def blaze_importable() -> str | None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(
        [sys.executable, "-c", "import blaze_green; blaze_green.App"],
        cwd=str(REPO),
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode == 0:
        return None
    return (r.stderr.strip().splitlines() or ["import failed"])[-1]


# --------------------------------------------------------------------------- running
def servers_for(sc: Scenario, ns: argparse.Namespace) -> list[str]:
    names = list(sc.servers)
    if ns.uvloop and "websockets" in names:
        names.insert(names.index("websockets") + 1, "websockets_uvloop")
    if ns.server_filter:
        names = [n for n in names if n in ns.server_filter]
    return names


def fmt_progress(sc: Scenario, r: dict) -> str:
    parts = []
    for col in sc.columns[:3]:
        if col.key in r and isinstance(r[col.key], int | float):
            parts.append(f"{col.header} {col.fmt.format(r[col.key])}")
    cpu = []
    for key, label in (
        ("server_cpu_pct", "server"),
        ("gen_cpu_pct", "gen"),
        ("other_load_pct", "others"),
        ("steal_pct", "steal"),
    ):
        if key in r:
            cpu.append(f"{label} {r[key]:.0f}%")
    return ", ".join(parts) + (f" [CPU {' / '.join(cpu)}]" if cpu else "")


def run_scenario(sc: Scenario, ns: argparse.Namespace, log_dir: Path, out: dict) -> None:
    params = sc.quick if ns.quick else sc.default
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
    for rep in range(ns.reps):
        k = rep % len(names)
        order = names[k:] + names[:k]
        specs = [SERVERS[n] for n in order]
        started = harness.start_servers(specs, log_dir)
        live = [s for s in started.values() if isinstance(s, harness.Server)]
        try:
            for name in order:
                srv = started[name]
                for case in cases:
                    row = rows[f"{case['case']}|{name}"]
                    tag = f"[{sc.name} {case['case']} rep {rep + 1}/{ns.reps}] {name}"
                    if isinstance(srv, BenchError):
                        row["failures"].append({"rep": rep + 1, "error": str(srv)})
                        log(f"{tag}: FAILED to start: {str(srv).splitlines()[0]}")
                        continue
                    if not srv.alive():
                        msg = f"server died before this run:\n{srv.log_tail()}"
                        row["failures"].append({"rep": rep + 1, "error": msg})
                        log(f"{tag}: FAILED: server died before this run")
                        continue
                    quiet = None
                    budget = min(ns.quiet_wait, QUIET_TOTAL_S - ns.quiet_spent)
                    if budget > 0:
                        quiet = harness.wait_for_quiet(budget)
                        ns.quiet_spent += quiet["waited_s"]
                    log(f"{tag} ...")
                    t0 = time.monotonic()
                    try:
                        r = sc.run(srv, case, params)
                    except BenchError as e:
                        row["failures"].append({"rep": rep + 1, "error": str(e)})
                        log(f"{tag}: FAILED: {e}")
                        continue
                    r["rep"] = rep + 1
                    r["wall_s"] = round(time.monotonic() - t0, 3)
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
                            "steal_pct",
                            "idle_pct",
                            "machine_busy_pct",
                            "other_load_pct",
                        ):
                            r.pop(key, None)
                        r["cpu_note"] = f"window under {MIN_CPU_WINDOW_S} s: CPU % not reported"

                    problem = sc.check(r)
                    if problem is None and not srv.alive():
                        problem = f"server exited during the run:\n{srv.log_tail()}"
                    if problem:
                        r["problem"] = problem
                        row["failures"].append({"rep": rep + 1, "error": problem, "result": r})
                        log(f"{tag}: FAILED: {problem.splitlines()[0]}")
                        continue
                    row["runs"].append(r)
                    log(f"{tag}: {fmt_progress(sc, r)}")
        finally:
            harness.stop_servers(live)


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


def _cell(col, summ: dict | None) -> str:
    if not summ:
        return "–"
    med = col.fmt.format(summ["median"])
    if col.spread and summ["n"] > 1:
        return f"{med} ({col.fmt.format(summ['min'])}–{col.fmt.format(summ['max'])})"
    return med


def markdown(out: dict, meta: dict) -> str:
    L = []
    L.append("## Benchmark results")
    L.append("")
    L.append(f"Command (from the repository root): `{meta['command']}`  ")
    L.append(
        f"Date: {meta['date']} · commit `{meta['git']}` · {meta['cores']} × {meta['cpu']} · Linux "
        f"{meta['kernel']} · Python {meta['python']}  "
    )
    vers = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    L.append(f"Versions: {vers}" + (f", {meta['wrk']}" if meta.get("wrk") else "") + "  ")
    L.append(
        f"Repetitions: {meta['reps']} per server, servers alternated within each repetition (order "
        f"rotated), each server a fresh process per repetition; CPU pinning: {meta['pinning']}"
        + (f"; servers and load generators at nice {meta['nice']}" if meta.get("nice") else "")
        + ".  "
    )
    L.append(
        "Cells: median (min–max) over repetitions. Ratios `blaze ÷ peer` use medians. "
        "CPU columns: % of one core over the measured window "
        "(server: utime+stime from /proc/PID/stat; loadgen: its own "
        "getrusage; wrk: rusage over its whole run); a load generator well below 100% is not the "
        "bottleneck. Other load: CPU used in the same window by every other process on the "
        "machine (user+system from /proc/stat minus server and load generator), % of one core; "
        f"on a shared machine anything above {DISTURBED_PCT:.0f}% means the run competed with "
        "someone else's work. Steal: % of machine CPU time taken by the hypervisor."
    )
    if meta.get("quiet_wait"):
        L.append("")
        L.append(
            f"Before each measurement the harness waited (up to {meta['quiet_wait']:.0f} s, "
            f"{QUIET_TOTAL_S:.0f} s in all; {meta.get('quiet_spent_s', 0):.0f} s spent) for "
            f"other processes to use less than {DISTURBED_PCT:.0f}% of a core."
        )
    L.append("")
    for name, entry in out.items():
        sc = SCENARIOS[name]
        L.append(f"### {name} — {sc.title}")
        L.append("")
        L.append(sc.description + f" Command: `{entry['command']}`.")
        L.append("")
        if entry.get("skipped"):
            L.append(f"Skipped: {entry['skipped']}")
            L.append("")
            continue
        multi_case = len(entry["cases"]) > 1
        ratio_hdr = f"blaze ÷ this ({sc.primary_label})"
        hdr = (
            (["case"] if multi_case else [])
            + ["server"]
            + [c.header for c in sc.columns]
            + [ratio_hdr]
        )
        L.append("| " + " | ".join(hdr) + " |")
        L.append(
            "|"
            + "|".join(
                ["---"] * (len(hdr) - len(sc.columns) - 1) + ["---:"] * (len(sc.columns) + 1)
            )
            + "|"
        )
        notes = []
        for case in entry["cases"]:
            for server in entry["servers"]:
                row = entry["rows"][f"{case}|{server}"]
                label = SERVERS[server].name
                cells = ([case] if multi_case else []) + [
                    f"**{label}**" if server == "blaze" else label
                ]
                if not row["runs"]:
                    why = (
                        row["failures"][0]["error"].splitlines()[0]
                        if row["failures"]
                        else "not run"
                    )
                    cells += [f"failed: {why}"[:120]] + ["–"] * (len(sc.columns) - 1) + ["–"]
                else:
                    cells += [_cell(c, row["summary"].get(c.key)) for c in sc.columns]
                    rat = entry["ratios"].get(f"{case}|{server}", {}).get(sc.primary)
                    cells.append(
                        "1.00×"
                        if server == "blaze" and row["runs"]
                        else (f"{rat:.2f}×" if rat is not None else "–")
                    )
                    if row["failures"]:
                        notes.append(
                            f"{server} ({case}): {len(row['failures'])} of "
                            f"{len(row['failures']) + len(row['runs'])} repetitions failed — "
                            f"{row['failures'][0]['error'].splitlines()[0]}"
                        )
                L.append("| " + " | ".join(cells) + " |")
        L.append("")
        lines = []
        for case in entry["cases"]:
            parts = []
            for server in entry["servers"]:
                rat = entry["ratios"].get(f"{case}|{server}")
                if not rat:
                    continue
                txt = f"{rat[sc.primary]:.2f}× {sc.primary_label}" if sc.primary in rat else ""
                for key, label in sc.extra_ratios:
                    if key in rat:
                        txt += f", {rat[key]:.2f}× {label}"
                parts.append(f"÷ {server}: {txt}")
            if parts:
                lines.append((f"{case}: " if multi_case else "") + "blaze " + "; ".join(parts))
        if lines:
            better = "higher" if sc.higher_is_better else "lower"
            L.append(
                f"Ratios ({sc.primary_label}: {better} is better for blaze"
                + ("; latency ratios: lower is better" if sc.extra_ratios else "")
                + "):"
            )
            L.append("")
            L.extend(f"- {x}" for x in lines)
            L.append("")
        runs = [r for row in entry["rows"].values() for r in row["runs"]]
        busy = [r for r in runs if r.get("other_load_pct", 0) > DISTURBED_PCT]
        if busy:
            worst = max(r["other_load_pct"] for r in busy)
            L.append(
                f"Disturbed: in {len(busy)} of {len(runs)} runs other processes used more than "
                f"{DISTURBED_PCT:.0f}% of a core (up to {worst:.0f}%); "
                "treat these numbers as noisy."
            )
            L.append("")
        if notes:
            L.append("Failures:")
            L.append("")
            L.extend(f"- {x}" for x in notes)
            L.append("")
    return "\n".join(L)


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
    log_dir = Path(tempfile.mkdtemp(prefix="blaze-bench-logs-"))
    try:
        harness.build_loadgen()
        if any("blaze" in servers_for(SCENARIOS[s], ns) for s in ns.scenario_list):
            err = blaze_importable()
            if err:
                log(
                    f"warning: blaze_green does not import yet ({err}); "
                    "its runs will be reported as failed"
                )
        est = sum(
            SCENARIOS[s].estimate_s(
                SCENARIOS[s].quick if ns.quick else SCENARIOS[s].default, ns.reps
            )
            for s in ns.scenario_list
        )
        log(
            f"bench: scenarios {', '.join(ns.scenario_list)}; {ns.reps} repetition(s); "
            f"{'quick' if ns.quick else 'default'} sizes; roughly {est / 60:.1f} min; "
            f"server logs in {log_dir}"
        )
        for name in ns.scenario_list:
            run_scenario(SCENARIOS[name], ns, log_dir, out)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping every process we started; the report covers what finished")
    finally:
        harness.REGISTRY.kill_all()
        signal.signal(signal.SIGTERM, old_term)
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    meta["quiet_spent_s"] = round(ns.quiet_spent, 1)
    meta["interrupted"] = interrupted
    add_summaries(out)
    report = markdown(out, meta)
    print(report)
    print(f"\n_Total wall time: {meta['elapsed_s']:.0f} s._")
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
