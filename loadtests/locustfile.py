"""Load test of the two examples: examples/feed.py (--host) and examples/chat.py (--chat-host).

    cd examples && blaze-green run feed:app --port 8080 &
    cd examples && blaze-green run chat:app --port 8081 &
    locust -f loadtests/locustfile.py --headless -u 500 -r 100 -t 60s \\
        --host http://127.0.0.1:8080 --chat-host http://127.0.0.1:8081

Users (weights in brackets):
- PageVisitor [1]: loads the feed and chat pages over HTTP.
- FeedChatter [3]: one /feed connection, sends a line and waits for its "Echo: ..." among the
  ticker updates: "receive feed echo" is the round trip.
- TickSubscriber [4]: one /ticks connection; every tick is reported as "push /ticks" with
  latency now - ts, and gaps in "seq" as failures. Also watches /heartbeat.
- ChatMember [2]: joins /chat under a unique name, says something now and then and waits for
  its own message to come back through the room broadcast.
- Churner [1]: connect, one echo, disconnect, again: connection churn (handshakes, on_open and
  on_close, registry updates) on the feed and on the chat room (joins and leaves).

See loadtests/README.md for reading the results and running with several processes.
"""

from __future__ import annotations

import itertools
import json
import os
import random

from locust import HttpUser, between, events, task

from blaze_green.testing.locust import WebSocketUser

DEFAULT_CHAT_HOST = "http://127.0.0.1:8081"
_names = itertools.count(1)


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    parser.add_argument(
        "--chat-host",
        default=os.environ.get("LOCUST_CHAT_HOST", DEFAULT_CHAT_HOST),
        help=f"base URL of examples/chat.py (default {DEFAULT_CHAT_HOST}; LOCUST_CHAT_HOST)",
    )


def chat_host(environment) -> str:
    """--chat-host, else $LOCUST_CHAT_HOST, else http://127.0.0.1:8081."""
    options = getattr(environment, "parsed_options", None)
    value = getattr(options, "chat_host", None) if options is not None else None
    return (value or os.environ.get("LOCUST_CHAT_HOST") or DEFAULT_CHAT_HOST).rstrip("/")


def unique_name(prefix: str) -> str:
    # Unique within this process; the pid keeps names apart across --processes workers.
    return f"{prefix}{os.getpid() % 10000}-{next(_names)}"


class Labelled:
    """Tags every request event with the user class (context["user_class"])."""

    def context(self):
        return {"user_class": type(self).__name__}


class PageVisitor(Labelled, HttpUser):
    weight = 1
    wait_time = between(2, 5)

    @task(2)
    def feed_page(self):
        with self.client.get("/", name="feed page", catch_response=True) as r:
            if "BTC ticker" not in r.text:
                r.failure("not the feed page")

    @task(1)
    def chat_page(self):
        url = chat_host(self.environment) + "/"
        with self.client.get(url, name="chat page", catch_response=True) as r:
            if "<h1>Chat</h1>" not in r.text:
                r.failure("not the chat page")


class FeedChatter(Labelled, WebSocketUser):
    weight = 3
    wait_time = between(1, 3)
    inbox_size = 100  # ticker updates pile up between echoes: keep the newest

    @task
    def chatter(self):
        if not self.connected:
            self.connect("/feed", name="feed")
        self.connection.drain()  # ticker updates that came in while we waited
        line = f"hello {random.randrange(10**6)}"
        self.send(line, name="feed")
        self.receive(timeout=5, match=f"Echo: {line}".__eq__, name="feed echo")


class TickSubscriber(Labelled, WebSocketUser):
    """Pushes are reported by the receive greenlets; the task only keeps the connections up."""

    weight = 4
    wait_time = between(1, 2)

    ticks = beat = None

    @task
    def subscribe(self):
        if self.ticks is None or self.ticks.closed:
            self.ticks = self.connect("/ticks")
        if self.beat is None or self.beat.closed:
            self.beat = self.connect("/heartbeat")
        beat = self.receive_json(timeout=5, connection=self.beat)  # one every second
        if beat != {"status": "alive"}:
            raise ValueError(f"unexpected heartbeat {beat!r}")


class ChatMember(Labelled, WebSocketUser):
    weight = 2
    wait_time = between(3, 8)
    inbox_size = 200  # the room's chatter; we only look for our own lines

    def _join(self):
        self.close_connections()  # a room connection that failed earlier
        self.nick = unique_name("member")
        self.connect(f"{chat_host(self.environment)}/chat?name={self.nick}", name="chat")
        self.receive(timeout=5, match=self._is_my_join, name="chat join")

    def _is_my_join(self, message):
        event = json.loads(message)
        return event["type"] == "join" and event["name"] == self.nick

    @task
    def say(self):
        if not self.connected:
            self._join()
        self.connection.drain()
        text = f"hi from {self.nick} #{random.randrange(10**6)}"
        self.send(text, name="chat")
        self.receive(timeout=5, match=lambda m: text in m, name="chat message")


class Churner(Labelled, WebSocketUser):
    weight = 1
    wait_time = between(0.5, 1.5)

    @task(2)
    def feed_churn(self):
        try:
            self.connect("/feed", name="feed churn")
            self.send("ping")
            self.receive(timeout=5, match="Echo: ping".__eq__)
            self.disconnect()
        finally:
            self.close_connections()  # after a failure: don't leak the connection

    @task(1)
    def chat_churn(self):
        name = unique_name("churner")
        try:
            self.connect(f"{chat_host(self.environment)}/chat?name={name}", name="chat churn")
            self.receive(timeout=5, match=lambda m: f'"name":"{name}"' in m)
            self.disconnect()
        finally:
            self.close_connections()
