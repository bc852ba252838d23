"""Many rooms over several processes: what each process receives from the broker.

    python -m bench.rooms [--rooms 2000] [--procs 4] [--msgs 5] [--size 100]
                          [--baseline PATH] [--json PATH]

Starts a redis-server (free port) and PROCS `blaze-green run` processes of
bench/servers/rooms_app.py sharing it. Room r lives on process r % PROCS, and even rooms also
on the next process: one WebSocket member per (room, process), so each process holds
ROOMS * 3/2 / PROCS members. Every room then gets MSGS broadcasts of SIZE bytes, published
by its home process. The report shows, per process, how many broker messages it received
(delivered to its own sessions) and ignored, next to what the cost model of docs/scaling.md
predicts for interest-based routing (MSGS x the rooms it shares with another home) and for
one shared channel (everything the other processes published). Every member must get exactly
MSGS messages (checked).

--baseline PATH runs the same servers with blaze_green from another checkout (an older tree
with one shared channel) right after, in the same run, so the two are side by side.
--redis-cluster MASTERS runs them on a Redis Cluster of MASTERS masters and as many replicas
(`redis+cluster://`, sharded pub/sub) and reports the bytes each node sent (not with
--baseline: older trees have no cluster support).
Process-level only: nothing is timed except the whole run's wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from websockets.asyncio.client import connect

from blaze_green.testing import ServerProcess

from .harness import RedisProc

HERE = Path(__file__).parent
SERVERS = HERE / "servers"


def placement(rooms: int, procs: int) -> dict[int, list[int]]:
    """room -> the processes it has a member on (home first)."""
    out = {}
    for r in range(rooms):
        home = r % procs
        if r % 2 == 0 and procs > 1:  # the second process varies, so every pair shares rooms
            out[r] = [home, (home + 1 + (r // 2) % (procs - 1)) % procs]
        else:
            out[r] = [home]
    return out


async def members(ports: list[int], place: dict[int, list[int]], msgs: int, timeout: float):
    """Open every member, return (connections, a coroutine that waits for every message)."""
    counts: dict[tuple[int, int], int] = {}
    conns = []
    sem = asyncio.Semaphore(64)

    async def open_one(room: int, proc: int) -> None:
        async with sem:
            ws = await connect(
                f"ws://127.0.0.1:{ports[proc]}/rooms/r{room}", open_timeout=30, max_queue=None
            )
        conns.append(ws)
        counts[(room, proc)] = 0

        async def read() -> None:
            try:
                async for _ in ws:
                    counts[(room, proc)] += 1
            except Exception:
                pass

        asyncio.get_running_loop().create_task(read())

    await asyncio.gather(*(open_one(r, p) for r, ps in place.items() for p in ps))

    async def all_in() -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(v >= msgs for v in counts.values()):
                return True
            await asyncio.sleep(0.05)
        return False

    return conns, counts, all_in


def redis_out_bytes(redis: RedisProc) -> int:
    """Redis's total_net_output_bytes (everything it sent to its clients so far)."""
    m = re.search(rb"total_net_output_bytes:(\d+)", redis.command("INFO", "stats"))
    return int(m.group(1)) if m else 0


def start_cluster(masters: int) -> list[RedisProc]:
    """A Redis Cluster of `masters` masters and one replica each, on free ports."""
    nodes = [RedisProc().start(cluster=True) for _ in range(2 * masters)]
    cli = shutil.which("redis-cli")
    if cli is None:
        raise SystemExit("redis-cli is not installed (apt-get install -y redis-tools)")
    subprocess.run(
        [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes)]
        + ["--cluster-replicas", "1", "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = [n.command("CLUSTER", "INFO") for n in nodes]
        repl = [n.command("INFO", "replication") for n in nodes]
        if all(b"cluster_state:ok" in i for i in info) and all(
            b"role:master" in r or b"master_link_status:up" in r for r in repl
        ):
            return nodes
        time.sleep(0.1)
    raise SystemExit("the Redis Cluster did not become ready")


def run(args: argparse.Namespace, pythonpath: str | None, label: str) -> dict:
    if args.redis_cluster:
        nodes = start_cluster(args.redis_cluster)
        redis = nodes[0]
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes[:2])
    else:
        nodes = [RedisProc().start()]
        redis = nodes[0]
        url = redis.url
    servers: list[ServerProcess] = []
    try:
        env = {"BLAZE_BROKER_URL": url}
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([str(SERVERS), pythonpath])
        for _ in range(args.procs):
            servers.append(ServerProcess("rooms_app:app", cwd=SERVERS, env=env).start())
        for s in servers:
            s.wait_for_output("subscribed to", 15)
        ports = [s.port for s in servers]
        place = placement(args.rooms, args.procs)

        async def scenario():
            conns, counts, all_in = await members(ports, place, args.msgs, 120)
            await asyncio.sleep(1.5)  # cluster counts and subscriptions settle
            out0 = [redis_out_bytes(n) for n in nodes]
            t0 = time.monotonic()
            bodies = [
                "\n".join(f"r{r}" for r, ps in place.items() if ps[0] == i)
                for i in range(args.procs)
            ]

            def post(i):
                return requests.post(
                    f"http://127.0.0.1:{ports[i]}/pub",
                    params={"count": args.msgs, "size": args.size},
                    data=bodies[i],
                    timeout=120,
                ).json()

            await asyncio.gather(*(asyncio.to_thread(post, i) for i in range(args.procs)))
            complete = await all_in()
            elapsed = time.monotonic() - t0
            out_bytes = [redis_out_bytes(n) - o for n, o in zip(nodes, out0, strict=True)]
            await asyncio.sleep(0.5)  # late duplicates would show up now
            exact = all(v == args.msgs for v in counts.values())
            for ws in conns:
                await ws.close()
            return complete, exact, elapsed, out_bytes

        complete, exact, elapsed, out_bytes = asyncio.run(scenario())
        rows = []
        published_total = args.rooms * args.msgs
        for i, s in enumerate(servers):
            b = requests.get(f"http://127.0.0.1:{s.port}/stats", timeout=10).json()["broker"]
            own = sum(1 for ps in place.values() if ps[0] == i) * args.msgs
            shared = sum(1 for ps in place.values() if i in ps[1:]) * args.msgs
            rows.append(
                dict(
                    process=i,
                    members=sum(1 for ps in place.values() if i in ps),
                    published=b.get("published", 0),
                    received=b.get("received", 0),
                    ignored=b.get("ignored", 0),
                    own=b.get("own", 0),
                    predicted_interest=shared,
                    predicted_one_channel=published_total - own,
                )
            )
        return dict(
            label=label,
            complete=complete,
            exact=exact,
            elapsed_s=elapsed,
            redis_out_bytes=sum(out_bytes),
            redis_out_bytes_per_node=out_bytes,
            rows=rows,
        )
    finally:
        for s in servers:
            s.stop()
        for n in nodes:
            n.stop()


def report(result: dict, args: argparse.Namespace) -> str:
    lines = [
        f"### {result['label']}: {args.rooms} rooms, {args.procs} processes, "
        f"{args.msgs} messages of {args.size} B per room",
        "",
        f"every member got exactly {args.msgs}: {result['exact']} "
        f"(all in: {result['complete']}); publish to last delivery {result['elapsed_s']:.2f} s; "
        f"Redis sent {result['redis_out_bytes']:,} bytes to its clients meanwhile"
        + (
            " (per node: " + ", ".join(f"{b:,}" for b in result["redis_out_bytes_per_node"]) + ")"
            if len(result["redis_out_bytes_per_node"]) > 1
            else ""
        ),
        "",
        "| process | members (rooms) | published | broker messages received | own echoes "
        "| ignored | model: interest routing | model: one channel |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['process']} | {r['members']} | {r['published']} | {r['received']} | "
            f"{r['own']} | {r['ignored']} | {r['predicted_interest']} | "
            f"{r['predicted_one_channel']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rooms", description=__doc__.split("\n")[0])
    p.add_argument("--rooms", type=int, default=2000)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--msgs", type=int, default=5)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--baseline", help="another checkout's root (its blaze_green is used)")
    p.add_argument("--json", help="write the results here")
    p.add_argument(
        "--redis-cluster",
        type=int,
        default=0,
        metavar="MASTERS",
        help="a Redis Cluster of MASTERS masters + as many replicas (redis+cluster://)",
    )
    args = p.parse_args(argv)
    if args.redis_cluster and args.baseline:
        p.error("--redis-cluster and --baseline do not go together (older trees have no cluster)")
    if RedisProc.binary() is None:
        print("redis-server is not installed (apt-get install -y redis-server)", file=sys.stderr)
        return 2
    results = [run(args, None, "this tree")]
    if args.baseline:
        results.append(run(args, os.path.abspath(args.baseline), f"baseline {args.baseline}"))
    print(f"Command: `python -m bench.rooms {' '.join(argv or sys.argv[1:])}`\n")
    for r in results:
        print(report(r, args))
        print()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["exact"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
