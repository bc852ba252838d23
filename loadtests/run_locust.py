"""Run loadtests/locustfile.py with locust as a library, for a bounded time; print JSON stats.

    python loadtests/run_locust.py --host http://127.0.0.1:8080 \\
        --chat-host http://127.0.0.1:8081 --users 30 --spawn-rate 15 --run-time 8

The last line on stdout is one JSON object: totals, one entry per (type, name) with counts and
response times, the failures by error, requests and failures per user class, and the exceptions
tasks raised. Logs go to stderr. tests/test_loadtest.py runs this in a child process, because
importing locust monkey-patches gevent and the test process must stay unpatched.

`--selftest` checks instead how WebSocketUser reports (connect 404/403, a 1009 close, pushes,
a seq gap, a receive timeout, greenlets stopped in on_stop) against a small app served in
this process by blaze_green.testing.AppServer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import locust  # first: it monkey-patches gevent (and so the rest of this process)
from locust.env import Environment

HERE = Path(__file__).resolve().parent


def _entry(entry) -> dict:
    return {
        "type": entry.method,
        "name": entry.name,
        "num_requests": entry.num_requests,
        "num_failures": entry.num_failures,
        "avg_ms": round(entry.avg_response_time, 2),
        "p50_ms": entry.get_response_time_percentile(0.5),
        "p95_ms": entry.get_response_time_percentile(0.95),
        "max_ms": round(entry.max_response_time or 0, 2),
    }


def run_load(args: argparse.Namespace) -> dict:
    import gevent

    os.environ["LOCUST_CHAT_HOST"] = args.chat_host
    sys.path.insert(0, str(HERE))
    import locustfile

    classes = [
        locustfile.PageVisitor,
        locustfile.FeedChatter,
        locustfile.TickSubscriber,
        locustfile.ChatMember,
        locustfile.Churner,
    ]
    by_class = {cls.__name__: {"requests": 0, "failures": 0} for cls in classes}

    def count(name, exception=None, context=None, **kwargs):
        user_class = (context or {}).get("user_class")
        if user_class in by_class:
            by_class[user_class]["requests"] += 1
            by_class[user_class]["failures"] += exception is not None

    env = Environment(user_classes=classes, host=args.host, events=locust.events)
    env.events.request.add_listener(count)
    runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    started = time.monotonic()
    runner.start(args.users, spawn_rate=args.spawn_rate)
    gevent.get_hub().loop.update_now()  # the loop's clock is stale since import: the timer
    gevent.spawn_later(args.run_time, runner.quit)  # would fire early
    runner.greenlet.join(timeout=args.run_time + 30)
    total = env.stats.total
    return {
        "duration_s": round(time.monotonic() - started, 2),
        "total": {"num_requests": total.num_requests, "num_failures": total.num_failures},
        "entries": sorted(
            (_entry(e) for e in env.stats.entries.values()), key=lambda e: (e["type"], e["name"])
        ),
        "errors": [
            {"type": e.method, "name": e.name, "error": e.error, "occurrences": e.occurrences}
            for e in env.stats.errors.values()
        ],
        "by_user_class": by_class,
        "exceptions": [
            {"count": e["count"], "msg": e["msg"], "traceback": e["traceback"]}
            for e in runner.exceptions.values()
        ],
    }


def run_selftest() -> dict:
    import gevent

    from blaze_green import App, Json
    from blaze_green.testing import AppServer
    from blaze_green.testing.locust import WebSocketFailure, WebSocketUser

    app = App(max_message_size=64)
    app.ws("/echo", on_message=lambda ws, msg: ws.send(msg))

    def gappy(ws):
        now = time.time()
        for seq in (1, 2, 4):
            ws.send(Json({"seq": seq, "ts": now}))
        ws.send("not a push")

    app.ws("/gappy", on_open=gappy)

    events: list[dict] = []

    def record(request_type, name, response_time, response_length, exception=None, **kwargs):
        events.append(
            {
                "type": request_type,
                "name": name,
                "response_time": response_time,
                "length": response_length,
                "failure": None
                if exception is None
                else f"{type(exception).__name__}: {exception}",
            }
        )

    class Probe(WebSocketUser):
        pass

    def expect_failure(fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except WebSocketFailure:
            return True
        return False

    def wait_for(predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            gevent.sleep(0.01)
        return True

    result: dict = {}
    with AppServer(app) as server:
        env = Environment(user_classes=[Probe], host=server.url)
        env.events.request.add_listener(record)
        user = Probe(env)
        echo = user.connect("/echo")
        user.send("hi")
        result["echo"] = user.receive(timeout=5)
        result["rejected_404"] = expect_failure(user.connect, "/nope")
        result["rejected_403"] = expect_failure(
            user.connect, "/echo", name="evil", headers={"Origin": "http://evil.example"}
        )
        gap = user.connect("/gappy")
        result["not_a_push"] = user.receive(timeout=5, connection=gap)
        result["timeout_reported"] = expect_failure(user.receive, timeout=0.2, connection=echo)
        user.send("x" * 100, connection=echo)  # over max_message_size: the server closes 1009
        result["closed_1009"] = wait_for(lambda: any(e["name"] == "closed /echo" for e in events))
        readers = [conn._reader for conn in user.connections]
        user.on_stop()
        result["readers_dead"] = all(r.dead for r in readers) and not user.connections
    result["events"] = events
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="http://127.0.0.1:8080", help="examples/feed.py")
    parser.add_argument("--chat-host", default="http://127.0.0.1:8081", help="examples/chat.py")
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--spawn-rate", type=float, default=15)
    parser.add_argument("--run-time", type=float, default=8, help="seconds")
    parser.add_argument("--selftest", action="store_true")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    from locust.log import setup_logging

    setup_logging(args.log_level)
    result = run_selftest() if args.selftest else run_load(args)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
