"""Locust load tests for WebSocket apps: `WebSocketUser`.

```python
from locust import between, task
from blaze_green.testing.locust import WebSocketUser

class Subscriber(WebSocketUser):
    wait_time = between(1, 2)

    @task
    def chatter(self):
        if not self.connected:
            self.connect("/feed")                       # "connect /feed": handshake time
        self.send("hello")                              # "send /feed": bytes sent
        self.receive(timeout=5, match=lambda m: m == "Echo: hello")   # "receive /feed"
```
Run it as any locustfile: `locust -f locustfile.py --host http://127.0.0.1:8080`.

Every operation is a locust request event of type `WS` named `"<operation> <label>"`, the label
being the `name=` given or the URL path (without the query string):

- `connect <label>`: the TCP connect + opening handshake time. A refused handshake (403, 404,
  503, ...) or a connection error is a failure.
- `send <label>`: the time to hand the frame to the socket; the length is the payload size.
- `receive <label>`: how long `receive()` waited for the message; a timeout or a closed
  session is a failure.
- `push <label>`: each JSON message carrying a `"ts"` (the server's `time.time()` when it sent
  it) is consumed by the connection's receive greenlet and reported with response time
  `now - ts` in ms: push latency (same clock on one machine; synchronize clocks otherwise).
- `seq gap <label>`: JSON messages carrying an integer `"seq"` must count up by one on each
  connection; a gap (or a step back) is a failure naming the expected and received numbers.
- `closed <label>`: the server closed the session with a code not in `expected_close_codes`
  (default {1000}), e.g. 1009 (message too big), 1011, 1013 or a dropped connection (1006):
  a failure, with the connection's lifetime as response time.
- `disconnect <label>`: our closing handshake, when a task calls `disconnect()`.

A failed operation is reported, then raises `WebSocketFailure` (a locust `RescheduleTask`), which
ends the task quietly: the failure is in the statistics once, not also as a user error. Connect
in tasks (or catch `WebSocketFailure` in `on_start`, where locust would stop the user).

Each connection has its own receive greenlet (it also answers pings); messages that are not
pushes wait in the connection's inbox (the newest `inbox_size`) for `receive()`. `on_stop`
closes every connection and stops the greenlets: call `super().on_stop()` if you override it.
Only `ws://` (host `http://...`) is supported.
"""

from __future__ import annotations

import collections
import json
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gevent
from gevent.event import Event
from locust import User
from locust.exception import RescheduleTask

from .websocket import WebSocketClosed, WebSocketSession, open_websocket

__all__ = [
    "ClosedByServer",
    "SequenceGap",
    "WebSocketConnection",
    "WebSocketFailure",
    "WebSocketUser",
]


class WebSocketFailure(RescheduleTask):
    """A WebSocket operation failed and was reported as a locust failure; ends the task."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class SequenceGap(Exception):
    """A pushed message's `seq` was not the previous one plus one."""


class ClosedByServer(Exception):
    """The server closed the session with an unexpected code."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed by the server with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class WebSocketConnection(WebSocketSession):
    """One connection of a `WebSocketUser`, read by a greenlet of its own."""

    _reader: gevent.Greenlet  # a threading.Thread in WebSocketSession

    def __init__(
        self,
        user: WebSocketUser,
        sock: Any,
        path: str,
        label: str,
        headers: dict[str, str],
        initial: bytes,
    ) -> None:
        self.user = user
        self.label = label
        self.opened_at = time.perf_counter()
        self.last_seq: int | None = None
        self.closing = False  # we started the close (disconnect/on_stop): not a failure
        self._inbox: collections.deque[str | bytes] = collections.deque(maxlen=user.inbox_size)
        self._arrived = Event()
        super().__init__(sock, path, headers, initial)

    # The reader: a gevent greenlet (locust runs everything on one hub).
    def _start_reader(self, initial: bytes) -> None:
        self._reader = gevent.spawn(self._read_loop, initial)

    def _stop_reader(self, timeout: float) -> None:
        if self._reader is not gevent.getcurrent():
            self._reader.kill(block=True, timeout=timeout)

    def on_message(self, data: str | bytes) -> None:
        if not self.user.consume_push(self, data):
            self._inbox.append(data)
            self._arrived.set()

    def on_close(self) -> None:
        self._arrived.set()
        self.user.connection_ended(self)

    def receive(
        self, timeout: float | None = 5.0, match: Callable[[Any], bool] | None = None
    ) -> str | bytes:
        """The next inbox message (for which `match(message)` is true: others are dropped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        inbox = self._inbox
        while True:
            while inbox:
                message = inbox.popleft()
                if match is None or match(message):
                    return message
            if self.closed:
                raise WebSocketClosed(self.close_code, self.close_reason)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no message on {self.label} within {timeout}s")
            self._arrived.clear()
            self._arrived.wait(remaining)

    def drain(self) -> list[str | bytes]:
        """Take every message waiting in the inbox (not reported)."""
        messages = list(self._inbox)
        self._inbox.clear()
        return messages

    def close(self, code: int = 1000, reason: str = "", timeout: float = 5.0) -> int | None:
        self.closing = True
        return super().close(code, reason, timeout)

    def abort(self) -> None:
        self.closing = True
        super().abort()


class WebSocketUser(User):
    """A locust user with WebSocket connections; see the module docstring for the events."""

    abstract = True

    request_type = "WS"
    connect_timeout = 10.0
    close_timeout = 2.0
    inbox_size = 1000
    push_timestamp_key: str | None = "ts"
    push_sequence_key: str | None = "seq"
    expected_close_codes: frozenset[int] = frozenset({1000})

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.connection: WebSocketConnection | None = None  # the latest one
        self.connections: list[WebSocketConnection] = []  # every open one

    # -- reporting ------------------------------------------------------------------------------

    def fire(
        self,
        name: str,
        response_time: float,
        response_length: int = 0,
        exception: BaseException | None = None,
    ) -> None:
        """Report one operation as a locust request event (type `request_type`)."""
        self.environment.events.request.fire(
            request_type=self.request_type,
            name=name,
            response_time=response_time,
            response_length=response_length,
            exception=exception,
            context=self.context(),
        )

    def _failed(self, name: str, started: float, exc: BaseException) -> WebSocketFailure:
        self.fire(name, (time.perf_counter() - started) * 1000, 0, exc)
        return WebSocketFailure(exc)

    # -- connections ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.closed

    def _target(self, path: str) -> tuple[str, int, str]:
        """(host, port, path with query) for a path on `self.host`, or a full URL."""
        base = self.host or getattr(self.environment, "host", None) or ""
        url = path if "://" in path else base.rstrip("/") + path
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "ws") or not parts.hostname:
            raise ValueError(f"need an http:// host or a ws:// URL, got {url!r}")
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return parts.hostname, parts.port or 80, resource

    def connect(
        self,
        path: str,
        name: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        subprotocols: Iterable[str] | None = None,
    ) -> WebSocketConnection:
        """Open a connection to `path` on the user's host (or to a full `ws://` URL).

        It becomes `self.connection`, which `send`/`receive`/`disconnect` use by default.
        """
        label = name or urllib.parse.urlsplit(path).path or "/"
        event = f"connect {label}"
        started = time.perf_counter()
        try:
            host, port, resource = self._target(path)
            sock, response_headers, initial = open_websocket(
                host,
                port,
                resource,
                headers=headers,
                subprotocols=subprotocols,
                timeout=self.connect_timeout,
            )
        except Exception as exc:
            raise self._failed(event, started, exc) from exc
        self.fire(event, (time.perf_counter() - started) * 1000)
        conn = WebSocketConnection(self, sock, resource, label, response_headers, initial)
        self.connections.append(conn)
        self.connection = conn
        return conn

    def _pick(self, connection: WebSocketConnection | None) -> WebSocketConnection:
        conn = connection or self.connection
        if conn is None:
            raise RuntimeError("not connected: call self.connect(path) first")
        return conn

    def send(
        self, data: Any, name: str | None = None, connection: WebSocketConnection | None = None
    ) -> int:
        """Send a message (str, bytes, or JSON for anything else); returns its size."""
        conn = self._pick(connection)
        event = f"send {name or conn.label}"
        started = time.perf_counter()
        try:
            size = conn.send(data)
        except Exception as exc:
            raise self._failed(event, started, exc) from exc
        self.fire(event, (time.perf_counter() - started) * 1000, size)
        return size

    def receive(
        self,
        timeout: float = 5.0,
        match: Callable[[Any], bool] | None = None,
        name: str | None = None,
        connection: WebSocketConnection | None = None,
    ) -> str | bytes:
        """The next message that is not a push (and satisfies `match`, if given; others are
        dropped), reported with the time waited for it."""
        conn = self._pick(connection)
        event = f"receive {name or conn.label}"
        started = time.perf_counter()
        try:
            message = conn.receive(timeout, match)
        except Exception as exc:
            raise self._failed(event, started, exc) from exc
        self.fire(event, (time.perf_counter() - started) * 1000, len(message))
        return message

    def receive_json(self, timeout: float = 5.0, **kwargs: Any) -> Any:
        return json.loads(self.receive(timeout, **kwargs))

    def disconnect(
        self,
        code: int = 1000,
        name: str | None = None,
        connection: WebSocketConnection | None = None,
    ) -> None:
        """Closing handshake on a connection (the latest by default), reported."""
        conn = self._pick(connection)
        event = f"disconnect {name or conn.label}"
        started = time.perf_counter()
        try:
            conn.close(code, timeout=self.close_timeout)
        except Exception as exc:
            raise self._failed(event, started, exc) from exc
        finally:
            self._forget(conn)
        self.fire(event, (time.perf_counter() - started) * 1000)

    def _forget(self, conn: WebSocketConnection) -> None:
        if conn in self.connections:
            self.connections.remove(conn)
        if self.connection is conn:
            self.connection = None

    def close_connections(self) -> None:
        """Close every connection and stop their receive greenlets (not reported)."""
        for conn in list(self.connections):
            try:
                conn.close(timeout=self.close_timeout)
            except Exception:
                conn.abort()
            self._forget(conn)

    def on_stop(self) -> None:
        self.close_connections()

    # -- the receive greenlets' side ------------------------------------------------------------

    def consume_push(self, conn: WebSocketConnection, data: str | bytes) -> bool:
        """Report a pushed JSON message with a timestamp and/or sequence number; True when it
        was a push (consumed: not put in the inbox)."""
        ts_key, seq_key = self.push_timestamp_key, self.push_sequence_key
        if not isinstance(data, str) or not data.startswith("{"):
            return False
        if not (ts_key and f'"{ts_key}"' in data) and not (seq_key and f'"{seq_key}"' in data):
            return False
        try:
            message = json.loads(data)
        except ValueError:
            return False
        if not isinstance(message, dict):
            return False
        seq = message.get(seq_key) if seq_key else None
        if isinstance(seq, int) and not isinstance(seq, bool):
            last, conn.last_seq = conn.last_seq, seq
            if last is not None and seq != last + 1:
                self.fire(
                    f"seq gap {conn.label}",
                    0,
                    0,
                    SequenceGap(f"expected seq {last + 1}, got {seq}"),
                )
        ts = message.get(ts_key) if ts_key else None
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            latency = max(0.0, (time.time() - ts) * 1000)
            self.fire(f"push {conn.label}", latency, len(data))
            return True
        return False

    def connection_ended(self, conn: WebSocketConnection) -> None:
        if not conn.closing and conn.close_code not in self.expected_close_codes:
            lifetime = (time.perf_counter() - conn.opened_at) * 1000
            self.fire(
                f"closed {conn.label}",
                lifetime,
                0,
                ClosedByServer(conn.close_code, conn.close_reason),
            )
        if not conn.closing:
            self._forget(conn)
