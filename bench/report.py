"""The report of a run: markdown (stdout and docs/BENCHMARKS.md) and one PNG chart per scenario.

Charts use matplotlib with the Agg backend (no display needed): for each scenario, bars of the
headline metric per case and server with min–max error bars, blaze_green highlighted, and,
where the scenario has a p99 latency, a second panel with it.
"""

from __future__ import annotations

import math
from pathlib import Path

from .harness import BASELINE, NODEFLATE, NOMETRICS, SERVERS, VARIANTS, log
from .scenarios import SCENARIOS

DISTURBED_PCT = 25.0
STEAL_PCT = 10.0  # hypervisor steal above this: the VM was disturbed
STEAL_RETRY_PCT = 15.0  # above this a run is measured again (--steal-retries)
QUIET_TOTAL_S = 60.0  # total time a run may spend waiting for a quiet machine

BLAZE_COLOR = "#d9480f"
# variants of blaze (harness.VARIANTS) in lighter oranges: --baseline, --metrics-off
VARIANT_COLORS = {BASELINE: "#ffa94d", NOMETRICS: "#ffd8a8", NODEFLATE: "#ffe066"}
VARIANT_COLOR = "#ffc078"  # a variant without a colour of its own
PEER_COLORS = [
    "#4c6ef5",
    "#15aabf",
    "#82c91e",
    "#fab005",
    "#be4bdb",
    "#868e96",
    "#343a40",
    "#e64980",
]


def ratio(r: float) -> str:
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"


def label(server: str) -> str:
    spec = SERVERS.get(server)
    return spec.label if spec and spec.label else server


# --------------------------------------------------------------------------- markdown
def _cell(col, summ: dict | None) -> str:
    if not summ:
        return "–"
    med = col.fmt.format(summ["median"])
    if col.spread and summ["n"] > 1:
        return f"{med} ({col.fmt.format(summ['min'])}–{col.fmt.format(summ['max'])})"
    return med


def _median(entry: dict, case: str, server: str, key: str) -> float | None:
    row = entry["rows"].get(f"{case}|{server}")
    if not row:
        return None
    return row.get("summary", {}).get(key, {}).get("median")


def variants_in(out: dict) -> list[str]:
    """The variants of blaze (--baseline, --metrics-off) measured in this run, in the order
    they joined."""
    return [v for v in VARIANTS if any(v in e.get("servers", []) for e in out.values())]


def summary_table(out: dict) -> list[str]:
    """One line per scenario and case: blaze_green's headline number, the best peer's (the
    raw gevent ceiling listed apart) and the ratio; for each variant of blaze in the run
    (--baseline, --metrics-off), also its number and blaze ÷ variant (a variant is never the
    "best peer")."""
    variants = variants_in(out)
    not_peers = {"blaze", "raw_gevent", *VARIANTS}
    L = [
        "| scenario | case | metric | blaze_green | "
        + "".join(f"{VARIANTS[v]} | blaze ÷ {VARIANTS[v]} | " for v in variants)
        + "best peer | blaze ÷ best peer | raw gevent ceiling |",
        "|---|---|---|---:|" + "---:|---:|" * len(variants) + "---|---:|---:|",
    ]
    for name, entry in out.items():
        sc = SCENARIOS[name]
        if entry.get("skipped"):
            L.append(
                f"| {name} | – | – | skipped: {entry['skipped']} | "
                + "| | " * len(variants)
                + "| | |"
            )
            continue
        for case in entry["cases"]:
            b = _median(entry, case, "blaze", sc.primary)
            fmt = sc.columns[0].fmt
            variant_cells = []
            for variant in variants:
                v = _median(entry, case, variant, sc.primary)
                variant_cells += [
                    fmt.format(v) if v is not None else "–",
                    ratio(b / v) if (b is not None and v) else "–",
                ]
            peers = []
            for server in entry["servers"]:
                if server in not_peers:
                    continue
                v = _median(entry, case, server, sc.primary)
                if v is not None:
                    peers.append((v, server))
            best = (max if sc.higher_is_better else min)(peers) if peers else None
            ceiling = _median(entry, case, "raw_gevent", sc.primary)
            L.append(
                "| "
                + " | ".join(
                    [
                        name,
                        case,
                        sc.primary_label,
                        fmt.format(b) if b is not None else "–",
                        *variant_cells,
                        f"{label(best[1])}: {fmt.format(best[0])}" if best else "–",
                        ratio(b / best[0]) if (b is not None and best and best[0]) else "–",
                        fmt.format(ceiling) if ceiling is not None else "",
                    ]
                )
                + " |"
            )
    return L


# --------------------------------------------------------------------------- compression
WS_DEFLATE = "websockets_deflate"
# The targets for permessage-deflate: (scenario, metric, other server, target, op,
# the cases it applies to (None: every case), what it compares). Ratios are blaze ÷ other.
DEFLATE_TARGETS = [
    (
        "fanout_deflate",
        "deliveries_per_s",
        WS_DEFLATE,
        8.0,
        ">=",
        "N=1000 ",
        "deliveries/s ÷ websockets with compression",
    ),
    (
        "fanout_deflate",
        "deliveries_per_s",
        NODEFLATE,
        0.7,
        ">=",
        None,
        "deliveries/s ÷ blaze_green without compression",
    ),
    (
        "fanout_deflate",
        "p99_ms",
        WS_DEFLATE,
        1.0,
        "<=",
        None,
        "p99 latency ÷ websockets with compression",
    ),
    (
        "echo_deflate",
        "rtt_per_s",
        WS_DEFLATE,
        1.0,
        ">=",
        None,
        "round trips/s ÷ websockets with compression",
    ),
    (
        "idle_memory_deflate",
        "kib_per_conn",
        NODEFLATE,
        1.1,
        "<=",
        None,
        "KiB/connection ÷ blaze_green without compression",
    ),
    (
        "idle_memory_deflate",
        "kib_per_conn",
        WS_DEFLATE,
        0.5,
        "<=",
        None,
        "KiB/connection ÷ websockets with compression",
    ),
]
DEFLATE_SCENARIOS = ("fanout_deflate", "echo_deflate", "idle_memory_deflate")


def _num(v: float | None, fmt: str = "{:,.0f}") -> str:
    return "–" if v is None else fmt.format(v)


def compression_section(out: dict, quick: bool = False) -> list[str]:
    """The permessage-deflate targets (blaze ÷ the server each compares with, per case, met or
    not) and the bytes on the wire per delivery of every server in the *_deflate scenarios.
    Empty when none of them ran."""
    ran = [n for n in DEFLATE_SCENARIOS if n in out and not out[n].get("skipped")]
    if not ran:
        return []
    L = ["## Compression (permessage-deflate): targets and bytes on the wire", ""]
    L.append(
        "Targets from the issue, read from the medians of the `*_deflate` tables below (ratio = "
        "blaze_green with compression ÷ the other server; for latency and memory lower is "
        "better). They are a reading aid, not assertions: on a shared machine check the "
        "min–max and the other-load column before calling one met or missed."
        + (" **Quick run: tiny sizes, the ratios are noise.**" if quick else "")
    )
    L += [
        "",
        "| scenario | case | blaze ÷ | blaze_green | other | ratio | target | |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for name, key, other, target, op, only, what in DEFLATE_TARGETS:
        entry = out.get(name)
        if not entry or entry.get("skipped"):
            continue
        fmt = next((c.fmt for c in SCENARIOS[name].columns if c.key == key), "{:,.1f}")
        for case in entry["cases"]:
            b = _median(entry, case, "blaze", key)
            o = _median(entry, case, other, key)
            r = b / o if (b is not None and o) else None
            if only is not None and not case.startswith(only):
                verdict = f"(target set for {only.strip()} only)"
            elif r is None:
                verdict = "not measured"
            else:
                ok = r >= target if op == ">=" else r <= target
                verdict = "met" if ok else "**not met**"
            sign = "≥" if op == ">=" else "≤"
            L.append(
                f"| {name} | {case} | {what} | {_num(b, fmt)} | {_num(o, fmt)} | "
                f"{ratio(r) if r is not None else '–'} | {sign} {target:g}× | {verdict} |"
            )
    bytes_rows = []
    for name in ("fanout_deflate", "echo_deflate"):
        entry = out.get(name)
        if not entry or entry.get("skipped"):
            continue
        for case in entry["cases"]:
            for server in entry["servers"]:
                w = _median(entry, case, server, "wire_bytes_per_msg")
                if w is None:
                    continue
                raw = _median(entry, case, server, "payload_bytes_per_msg")
                comp = _median(entry, case, server, "compressed_pct")
                bytes_rows.append(
                    f"| {name} | {case} | {label(server)} | {_num(raw)} | {_num(w)} | "
                    f"{_num(100 * w / raw if raw else None, '{:.0f}%')} | "
                    f"{_num(comp, '{:.0f}%')} |"
                )
    if bytes_rows:
        L += [
            "",
            "Bytes on the wire per delivery: WebSocket frame bytes (header + payload, as "
            "received by the load generator) per message from the server, against the message "
            "after inflating (`raw`); `compressed` is the share of messages that arrived with "
            "RSV1 set. TCP/IP headers and the handshake are not counted.",
            "",
            "| scenario | case | server | raw B/delivery | wire B/delivery | wire ÷ raw "
            "| compressed |",
            "|---|---|---|---:|---:|---:|---:|",
            *bytes_rows,
        ]
    L.append("")
    return L


def header(meta: dict) -> list[str]:
    L = []
    L.append(f"Command (from the repository root): `{meta['command']}`  ")
    L.append(
        f"Date: {meta['date']} · commit `{meta['git']}` · {meta['cores']} × {meta['cpu']} · "
        f"{meta.get('mem_gib', '?')} GiB RAM · Linux {meta['kernel']} · Python {meta['python']}  "
    )
    vers = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    extra = [x for x in (meta.get("wrk"), meta.get("redis_server")) if x]
    L.append(f"Versions: {vers}" + (", " + ", ".join(extra) if extra else "") + "  ")
    reps = ", ".join(f"{k} {v}" for k, v in meta.get("reps", {}).items())
    L.append(
        f"Repetitions per server: {reps}. Servers alternate within each repetition (order "
        f"rotated: A B C, B C A, ...), each a fresh process per repetition; CPU pinning: "
        f"{meta['pinning']} (except the cluster scenario)"
        + (f"; servers and load generators at nice {meta['nice']}" if meta.get("nice") else "")
        + ".  "
    )
    base = meta.get("baseline")
    if base:
        L.append(
            f"Baseline (`--baseline`): `{BASELINE}` is the same `bench/servers/blaze.py` with "
            f"blaze_green imported from `{base['blaze_green_file']}` (commit `{base['git']}`); "
            f"`blaze` imports it from `{meta.get('blaze_green_file') or '?'}` (commit "
            f"`{meta['git']}`). `blaze ÷ {BASELINE}` is the new tree against the old one.  "
        )
    if meta.get("metrics_off"):
        L.append(
            f"Metrics off (`--metrics-off`): `{NOMETRICS}` is the same `bench/servers/blaze.py` "
            f"and blaze_green as `blaze`, started with `{meta['metrics_off']['env']}`, for which "
            f"it builds its app with `{meta['metrics_off']['option']}` (checked: `app.stats()` is "
            f"empty). `blaze ÷ {NOMETRICS}` is what the metrics cost: under 1 for deliveries/s "
            "and round trips/s, over 1 for latency and memory, means counting costs that much.  "
        )
    if meta.get("elapsed_s") is not None:
        L.append(f"Total wall time: {meta['elapsed_s']:.0f} s.")
    return L


HOW_TO_READ = """\
- Every cell is the **median (min–max)** over the repetitions; `blaze ÷ this` ratios divide
  medians (for latency and memory, lower is better, so a ratio under 1 favours blaze_green).
  The numbers only mean something as ratios between servers measured in the same run on the
  same machine: absolute values depend on the machine.
- **CPU columns** are % of one core over the measured window: the server's `utime+stime` from
  `/proc/PID/stat` (gunicorn: summed over the workers) and the load generator's own
  `getrusage` (wrk: over its whole run). A load generator well below 100% while the server
  is near 100% means the server is the limit, not the generator. **Other load** is what every
  other process on the machine used in the same window; above {disturbed:.0f}% the run
  competed with someone else's work (see the "Disturbed" lines). **Steal** is the share of the
  machine's CPU time the hypervisor gave to other guests; runs above {steal:.0f}% are listed
  under their table ("Steal" lines): on a shared VM they explain most wide min–max ranges.
- **Fan-out latency trade-off.** {fanout}
- A server that failed a check (missing or out-of-order deliveries, bad echoes, non-2xx
  responses, a crash) is not counted; the failures are listed under its table. A peer whose
  package is not installed is shown as "not installed".
- Peers and their settings are described in `bench/README.md` (compression off everywhere
  but the `*_deflate` scenarios, where the load generator offers permessage-deflate; server
  pings off, TCP_NODELAY, 4 MiB messages, listen backlog 1024)."""


def markdown(out: dict, meta: dict, charts: dict[str, str] | None = None) -> str:
    """The report. `charts`: scenario name -> chart path relative to the markdown file."""
    from .scenarios import FANOUT_READING

    L = ["# Benchmarks", ""]
    L.append(
        "Generated by `python -m bench` (see `bench/README.md`); rerun it rather than editing "
        "this file."
    )
    L.append("")
    L += header(meta)
    if meta.get("quiet_wait"):
        L.append("")
        L.append(
            f"Before each measurement the harness waited (up to {meta['quiet_wait']:.0f} s, "
            f"{QUIET_TOTAL_S:.0f} s in all; {meta.get('quiet_spent_s', 0):.0f} s spent) for "
            f"other processes to use less than {DISTURBED_PCT:.0f}% of a core."
        )
    if meta.get("steal_retries"):
        L.append("")
        L.append(
            f"A run in which the hypervisor's steal was above {STEAL_RETRY_PCT:.0f}% was discarded "
            f"and measured again on the same server, up to {meta['steal_retries']} times (not for "
            "idle memory or the cluster); the tables show the run kept, and each scenario says "
            "how many were discarded. Runs still above the limit after that are kept and listed."
        )
    if meta.get("interrupted"):
        L += ["", "**The run was interrupted: the tables cover what finished.**"]
    L += ["", "## Summary", ""]
    L += summary_table(out)
    comp = compression_section(out, bool(meta.get("quick")))
    if comp:
        L += [""] + comp
    L += ["", "## How to read these numbers", ""]
    L.append(HOW_TO_READ.format(disturbed=DISTURBED_PCT, steal=STEAL_PCT, fanout=FANOUT_READING))
    L.append("")
    for name, entry in out.items():
        L += scenario_section(name, entry, (charts or {}).get(name))
    return "\n".join(L)


def scenario_section(name: str, entry: dict, chart: str | None) -> list[str]:
    sc = SCENARIOS[name]
    L = [f"## {name} — {sc.title}", ""]
    L.append(sc.description + f" Command: `{entry['command']}`.")
    L.append("")
    if entry.get("skipped"):
        L += [f"Skipped: {entry['skipped']}", ""]
        return L
    if chart:
        L += [f"![{name}: {sc.primary_label}]({chart})", ""]
    multi_case = len(entry["cases"]) > 1
    ratio_hdr = f"blaze ÷ this ({sc.primary_label})"
    hdr = (["case"] if multi_case else []) + ["server"] + [c.header for c in sc.columns]
    hdr.append(ratio_hdr)
    L.append("| " + " | ".join(hdr) + " |")
    n_left = len(hdr) - len(sc.columns) - 1
    L.append("|" + "|".join(["---"] * n_left + ["---:"] * (len(sc.columns) + 1)) + "|")
    notes = []
    for case in entry["cases"]:
        for server in entry["servers"]:
            row = entry["rows"][f"{case}|{server}"]
            name_cell = f"**{label(server)}**" if server == "blaze" else label(server)
            cells = ([case] if multi_case else []) + [name_cell]
            if row.get("skipped"):
                cells += [row["skipped"]] + ["–"] * (len(sc.columns) - 1) + ["–"]
            elif not row["runs"]:
                why = row["failures"][0]["error"].splitlines()[0] if row["failures"] else "not run"
                cells += [f"failed: {why}"[:120]] + ["–"] * (len(sc.columns) - 1) + ["–"]
            else:
                cells += [_cell(c, row["summary"].get(c.key)) for c in sc.columns]
                rat = entry["ratios"].get(f"{case}|{server}", {}).get(sc.primary)
                cells.append(
                    "1.00×" if server == "blaze" else (ratio(rat) if rat is not None else "–")
                )
                if row["failures"]:
                    notes.append(
                        f"{server} ({case}): {len(row['failures'])} of "
                        f"{len(row['failures']) + len(row['runs'])} repetitions failed — "
                        f"{row['failures'][0]['error'].splitlines()[0]}"
                    )
            L.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    L.append("")
    lines = []
    for case in entry["cases"]:
        parts = []
        for server in entry["servers"]:
            rat = entry["ratios"].get(f"{case}|{server}")
            if not rat:
                continue
            txt = f"{ratio(rat[sc.primary])} {sc.primary_label}" if sc.primary in rat else ""
            for key, lab in sc.extra_ratios:
                if key in rat:
                    txt += f", {ratio(rat[key])} {lab}"
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
    extra = sc.notes(entry)
    if extra:
        L.extend(extra)
        L.append("")
    if sc.reading:
        L += [f"Reading this table: {sc.reading}", ""]
    runs = [r for row in entry["rows"].values() for r in row["runs"]]
    busy = [r for r in runs if r.get("other_load_pct", 0) > DISTURBED_PCT]
    if busy:
        worst, who = _worst_and_who(busy, "other_load_pct")
        L.append(
            f"Disturbed: in {len(busy)} of {len(runs)} runs other processes used more than "
            f"{DISTURBED_PCT:.0f}% of a core (up to {worst:.0f}%; {who}); "
            "treat these numbers as noisy."
        )
        L.append("")
    discarded = [r for row in entry["rows"].values() for r in row.get("discarded", [])]
    if discarded:
        worst, who = _worst_and_who(discarded, "steal_pct")
        L.append(
            f"Measured again: {len(discarded)} run(s) discarded for steal above "
            f"{STEAL_RETRY_PCT:.0f}% (up to {worst:.0f}%; {who})."
        )
        L.append("")
    stolen = [r for r in runs if r.get("steal_pct", 0) > STEAL_PCT]
    if stolen:
        worst, who = _worst_and_who(stolen, "steal_pct")
        L.append(
            f"Steal: in {len(stolen)} of {len(runs)} runs the hypervisor took more than "
            f"{STEAL_PCT:.0f}% of the machine's CPU time (up to {worst:.0f}%; {who}): "
            "those runs were slowed down from outside the machine; the min–max shows by how much."
        )
        L.append("")
    if notes:
        L += ["Failures:", ""]
        L.extend(f"- {x}" for x in notes)
        L.append("")
    return L


def _worst_and_who(runs: list[dict], key: str) -> tuple[float, str]:
    """The largest `key` among flagged runs, and the servers they belong to."""
    who = sorted({str(r.get("server", "?")) for r in runs})
    return max(r[key] for r in runs), ", ".join(who)


# --------------------------------------------------------------------------- charts
def write_charts(out: dict, directory: Path, meta: dict) -> dict[str, Path]:
    """One PNG per scenario that has results; returns scenario -> path. Without matplotlib,
    logs why and returns {}."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        log(f"charts skipped: matplotlib is not installed ({e})")
        return {}
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, entry in out.items():
        if entry.get("skipped"):
            continue
        sc = SCENARIOS[name]
        servers = [
            s
            for s in entry["servers"]
            if any(entry["rows"][f"{c}|{s}"]["runs"] for c in entry["cases"])
        ]
        if not servers:
            continue
        metrics = [(sc.primary, sc.primary_label, sc.higher_is_better)]
        if any(k == "p99_ms" for k, _ in sc.extra_ratios):
            metrics.append(("p99_ms", "p99 latency ms", False))
        ncases = len(entry["cases"])
        width = max(6.5, 1.0 + 0.55 * len(servers) * ncases)
        fig, axes = plt.subplots(
            1, len(metrics), figsize=(width * (1 if len(metrics) == 1 else 1.6), 4.6)
        )
        if len(metrics) == 1:
            axes = [axes]
        colors = {}
        k = 0
        for s in servers:
            if s == "blaze":
                colors[s] = BLAZE_COLOR
            elif s in VARIANTS:
                colors[s] = VARIANT_COLORS.get(s, VARIANT_COLOR)
            else:
                colors[s] = PEER_COLORS[k % len(PEER_COLORS)]
                k += 1
        for ax, (key, mlabel, higher) in zip(axes, metrics, strict=True):
            group_w = 0.8
            bar_w = group_w / len(servers)
            for i, s in enumerate(servers):
                xs, ys, lo, hi = [], [], [], []
                for ci, case in enumerate(entry["cases"]):
                    summ = entry["rows"][f"{case}|{s}"].get("summary", {}).get(key)
                    if not summ:
                        continue
                    xs.append(ci - group_w / 2 + (i + 0.5) * bar_w)
                    ys.append(summ["median"])
                    lo.append(summ["median"] - summ["min"])
                    hi.append(summ["max"] - summ["median"])
                if not xs:
                    continue
                ax.bar(
                    xs,
                    ys,
                    bar_w * 0.92,
                    yerr=[lo, hi],
                    capsize=2.5,
                    color=colors[s],
                    # variants of blaze: outlined in blaze's colour (the palest is faint)
                    edgecolor="black" if s == "blaze" else BLAZE_COLOR if s in VARIANTS else "none",
                    linewidth=1.2 if s == "blaze" else 0.8 if s in VARIANTS else 0,
                    label=label(s),
                    error_kw={"elinewidth": 0.9},
                )
            ax.set_xticks(range(ncases))
            ax.set_xticklabels([_wrap(c) for c in entry["cases"]], fontsize=8)
            ax.set_ylabel(mlabel + (" (higher is better)" if higher else " (lower is better)"))
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
            ys_all = [
                entry["rows"][f"{c}|{s}"].get("summary", {}).get(key, {}).get("max")
                for c in entry["cases"]
                for s in servers
            ]
            ys_all = [y for y in ys_all if y]
            if ys_all and min(ys_all) > 0 and max(ys_all) / min(ys_all) > 50:
                ax.set_yscale("log")
                ax.set_ylabel(ax.get_ylabel() + ", log scale")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: _human(v)))
        axes[0].legend(fontsize=7, loc="best", framealpha=0.85)
        fig.suptitle(
            f"{name} — {sc.title} (median, min–max over repetitions; {meta['date']})",
            fontsize=10,
        )
        fig.tight_layout()
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written[name] = path
    return written


def _wrap(text: str, width: int = 22) -> str:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    return "\n".join(lines)


def _human(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0"
    for div, suf in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            x = v / div
            return f"{x:.0f}{suf}" if x >= 10 else f"{x:.1f}{suf}"
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.2g}"
