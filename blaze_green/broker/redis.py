"""The Redis broker: cross-process broadcast, cluster-wide session counts, singleton tasks.

One `RedisBroker` per process (per gunicorn worker), created and started when the server starts.
All of its I/O happens on its own greenlets; the only calls that reach it from request handlers
are `publish()` (a non-blocking send, or an append to a bounded buffer), `watch()`/`unwatch()`
(bookkeeping) and `cluster_count()` (one short Redis read with a 0.5 s timeout, answered
locally while Redis is known to be down).

Broadcast
    Each path has its own channel, ``{prefix}:bcast:{db}:{path}`` (prefix ``blaze_green``
    unless the URL says ``?prefix=NAME``; the database number is in the name because pub/sub
    ignores databases), and a process subscribes to it only while it has sessions on that path
    (interest-based routing, see `blaze_green.broker.interest`): the runtime calls `watch()`
    when a session registers and `unwatch()` when a path's last session leaves. A path's first
    session waits (at most 2 s, in the runtime) for the SUBSCRIBE reply, so that its on_open
    runs once every message published from then on reaches it. The subscription connection
    is also subscribed to ``{prefix}:ctl:{db}``, so it stays in subscribed mode with no path;
    one greenlet reads it, another (the only writer once it listens) sends the SUBSCRIBE and
    UNSUBSCRIBE commands and the keepalive PING. After a reconnection every watched path is
    subscribed again at once.

    `publish()` runs before the local delivery and writes the PUBLISH straight to the publish
    connection's socket with a non-blocking send (`blaze_green.broker.pubconn`), so the other
    processes deliver while this one does; what the kernel does not take waits in a bounded
    buffer (8 MiB) that the publisher greenlet sends, and beyond it messages are dropped and
    counted, with a warning at most once a minute. Before the first connection, messages wait
    in an outbox of 10,000. A reader greenlet counts the replies; a PUBLISH unanswered for the
    socket timeout (2 s) means a hung Redis: the connection is dropped as an outage. The
    subscriber skips messages carrying this process's node id (they were delivered locally
    when they were broadcast) and counts as ``ignored`` those for a path it has just left;
    it builds each frame once and hands it to the local registry. Order per publisher holds
    because every PUBLISH of a process goes down one connection in call order (callers and
    the publisher greenlet never interleave: neither yields between checking the buffer and
    sending), and Redis keeps the order of one connection's commands.

Wire format (version 1), one Redis message per broadcast::

    byte 0      version (1)
    byte 1      WebSocket opcode (1 text, 2 binary)
    byte 2      N, length of the node id (<= 255)
    bytes 3-4   P, length of the UTF-8 path, big-endian
    N bytes     node id (ASCII: "hostname:pid:random hex")
    P bytes     path
    the rest    the payload exactly as it goes into the frame (serialized once, never re-encoded)

Cluster counts
    Every second a greenlet writes this process's per-path session counts to the hash
    ``{prefix}:conns:{node}`` with a 5 s expiry, and its node id to the sorted set
    ``{prefix}:nodes`` (in one MULTI). `cluster_count(path)` adds, in one Lua call, the counts of
    every other node whose hash still exists to the live local count. A dead process drops out
    within 5 s; a stopped one at once (its hash is deleted on stop).

Singletons
    `run_singleton()` takes ``{prefix}:singleton:{name}`` with ``SET NX PX 10000`` (retrying
    every 2 s), runs the task in a child greenlet and renews the lease every 3 s with a Lua
    compare-and-extend, which also re-takes a key that vanished (a Redis restart). If another
    process holds the key, or Redis stays unreachable for 7 s (the lease may be about to lapse),
    the task is killed here and the loop goes back to trying. For 4 s after an outage the
    others do not try, so the previous holder gets its lease back first. The lease is released
    with a compare-and-delete when the task ends or the server stops (another process takes over
    within 2 s); a holder that dies is replaced within 10 s (expiry) + 2 s (retry). If the task
    function returns or raises, the lease is released and another process's copy may start:
    singletons are meant to be long-running loops.

Faults
    No Redis error reaches a caller. Connection errors and timeouts are an outage: its first
    failure logs one WARNING (``broker redis://host:port/db unreachable: ...``) and drops idle
    pooled sockets (so none fails stale after the recovery); the first success of an operation
    begun after the outage started logs one INFO. Failures of operations begun before the last
    recovery are ignored, so one outage is one warning. Error replies (ACL, ...) are logged at
    most once a minute and do not count as an outage. The subscriber reconnects with exponential
    backoff (0.1 s doubling to 5 s, jittered) and the publisher probes with PING the same way;
    both wake as soon as another greenlet (the counts writer, every second) sees Redis back.
    While the publisher knows Redis is unreachable, published messages are dropped (they reached
    local sessions only); they are never queued for later. An idle subscription is PINGed every
    5 s, so a silent network failure is noticed within 10 s. Connects time out after 1 s and
    commands after 2 s, unless the URL sets ``socket_connect_timeout``/``socket_timeout``;
    redis-py's own retries are off (a retried PUBLISH could be delivered twice).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import gevent
from gevent import Greenlet, GreenletExit
from gevent.event import Event

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]
    RedisError = Exception  # type: ignore[assignment,misc]

from ..ws.frames import OP_BINARY, OP_TEXT
from .interest import Interest
from .pubconn import PublishConnection, ReplyError
from .resp import encode_command

if TYPE_CHECKING:
    from . import BrokerHost

__all__ = ["RedisBroker", "pack_message", "unpack_message"]

log = logging.getLogger("blaze_green")

WIRE_VERSION = 1
_HEADER = struct.Struct("!BBBH")  # version, opcode, node id length, path length
# Errors that mean "cannot talk to Redis" (an outage), as opposed to an error reply.
_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (OSError,)
if redis is not None:
    _OUTAGE_ERRORS += (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    )

_COUNT_SCRIPT = """
local nodes = redis.call('ZRANGE', KEYS[1], 0, -1)
local total = 0
for _, n in ipairs(nodes) do
  if n ~= ARGV[3] then
    local v = redis.call('HGET', ARGV[1] .. n, ARGV[2])
    if v then total = total + tonumber(v) end
  end
end
return total
"""

_RENEW_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def pack_message(node: bytes, path: str, opcode: int, payload: bytes) -> bytes:
    """One broadcast on the wire (see the module docstring)."""
    path_b = path.encode("utf-8")
    return b"".join(
        (_HEADER.pack(WIRE_VERSION, opcode, len(node), len(path_b)), node, path_b, payload)
    )


def unpack_message(data: bytes) -> tuple[bytes, str, int, memoryview]:
    """(node id, path, opcode, payload) of a wire message; ValueError if it is not one."""
    if len(data) < _HEADER.size:
        raise ValueError("message too short")
    version, opcode, nlen, plen = _HEADER.unpack_from(data)
    if version != WIRE_VERSION:
        raise ValueError(f"unknown wire version {version}")
    if opcode not in (OP_TEXT, OP_BINARY):  # never frame a control or reserved opcode
        raise ValueError(f"opcode {opcode} is not a data message")
    start = _HEADER.size
    end = start + nlen + plen
    if len(data) < end:
        raise ValueError("truncated message")
    node = data[start : start + nlen]
    path = data[start + nlen : end].decode("utf-8")
    return node, path, opcode, memoryview(data)[end:]


def _make_node_id() -> str:
    host = socket.gethostname()[:200] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


def _split_url(url: str) -> tuple[str, str | None, str]:
    """(URL for redis-py without our own query keys, prefix from ?prefix=, URL safe to log)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = None
    kept = []
    for key, value in query:
        if key == "prefix":
            prefix = value
        else:
            kept.append((key, value))
    clean = urlunsplit(parts._replace(query=urlencode(kept)))
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return clean, prefix, shown


class RedisBroker:
    """The Redis implementation of `blaze_green.broker.Broker` (see the module docstring).

    Tunables are keyword arguments; the defaults are the documented guarantees (counts at most
    5 s old, singleton takeover within 15 s).
    """

    outbox_size = 10_000
    count_interval = 1.0
    count_ttl = 5.0
    lock_ttl = 10.0
    lock_renew = 3.0
    lock_retry = 2.0
    backoff_min = 0.1
    backoff_max = 5.0
    keepalive = 5.0  # PING an idle subscription this often; no answer by the next: reconnect
    stop_timeout = 1.5
    publish_command = b"PUBLISH"  # SPUBLISH on a Redis Cluster shard (blaze_green.broker.cluster)
    subscribe_command = b"SUBSCRIBE"
    unsubscribe_command = b"UNSUBSCRIBE"
    merge_subscriptions = True
    unsent_bytes = 8 << 20  # what the publish socket has not taken yet, at most

    def __init__(
        self, url: str, host: BrokerHost, *, prefix: str | None = None, **options: Any
    ) -> None:
        if redis is None:
            raise ImportError("the Redis broker needs redis-py: pip install 'blaze-green[redis]'")
        for name, value in options.items():
            if not hasattr(type(self), name):
                raise TypeError(f"RedisBroker got an unknown option {name!r}")
            setattr(self, name, value)
        clean_url, url_prefix, self.display_url = _split_url(url)
        self.prefix = prefix or url_prefix or "blaze_green"
        self.node_id = _make_node_id()
        self._node = self.node_id.encode("ascii", "replace")[:255]
        self._host = host
        self._nodes_key = f"{self.prefix}:nodes"
        self._conns_prefix = f"{self.prefix}:conns:"
        self._conns_key = self._conns_prefix + self.node_id
        conn_options = {
            "retry": Retry(NoBackoff(), 0),  # no silent retries: a retried PUBLISH could duplicate
            "protocol": 2,  # plain RESP2: any Redis >= 2.8 (no HELLO needed)
            "client_name": f"blaze_green:{self.node_id}",
        }
        # The broker's own greenlets.
        self._pool = redis.ConnectionPool.from_url(
            clean_url, socket_connect_timeout=1.0, socket_timeout=2.0, **conn_options
        )
        self._client = redis.Redis(connection_pool=self._pool)
        # cluster_count() runs on the caller's greenlet (a request handler): shorter timeouts.
        self._quick_pool = redis.ConnectionPool.from_url(
            clean_url, socket_connect_timeout=0.5, socket_timeout=0.5, **conn_options
        )
        self._quick = redis.Redis(connection_pool=self._quick_pool)
        # Pub/sub ignores the database number: put it in the channel name, so that apps on
        # different databases of one Redis stay apart, as their keys do.
        db = self._pool.connection_kwargs.get("db", 0)
        # One channel per path ({prefix}:bcast:{db}:{path}), subscribed while the path has
        # local sessions; the control channel keeps the connection in subscribed mode.
        self._channel_prefix = f"{self.prefix}:bcast:{db}:".encode()
        self._control = f"{self.prefix}:ctl:{db}"
        self._interest = Interest(
            self._channel_for,
            self.subscribe_command,
            self.unsubscribe_command,
            merge=self.merge_subscriptions,
        )
        self._sub_conn: Any = None  # the listening connection, while there is one
        self._sub_wake = Event()
        self._ping_due = False
        self._count_script = self._client.register_script(_COUNT_SCRIPT)
        self._renew_script = self._client.register_script(_RENEW_SCRIPT)
        self._release_script = self._client.register_script(_RELEASE_SCRIPT)

        self._outbox: collections.deque[bytes] = collections.deque()  # until connected
        self._pubconn: PublishConnection | None = None
        self._wake = Event()
        self._pub_up = True  # False while the publisher knows Redis is unreachable
        self._overflow_logged = float("-inf")  # monotonic time of the last overflow warning
        self._greenlets: list[Greenlet] = []
        self._held: set[str] = set()  # singleton keys this process holds
        self._stopped = False
        # Outage bookkeeping, shared by every greenlet: one WARNING per outage.
        self._down = False
        self._up = Event()  # set while not _down: wakes the reconnect loops on recovery
        self._up.set()
        self._errors_logged: dict[str, float] = {}
        self._down_since = 0.0
        self._recovered_at = float("-inf")
        self._subscribed_once = False
        self._dropped_at_outage = 0
        self._last_contact: float | None = None  # monotonic time of the last success
        self.stats: dict[str, int] = collections.Counter()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._greenlets or self._stopped:
            return
        for name, fn in (
            ("publisher", self._publisher),
            ("subscriber", self._subscriber),
            ("subscription writer", self._sub_writer),
            ("counts", self._counter),
        ):
            g = Greenlet(self._guard, name, fn)
            g.name = f"blaze_green.broker.{name}"
            g.start()
            self._greenlets.append(g)

    def _guard(self, name: str, fn: Callable[[], None]) -> None:
        """Run one of the broker's loops; restart it if a bug makes it raise."""
        while True:
            try:
                fn()
            except GreenletExit:
                raise
            except Exception:
                if self._stopped:
                    return  # stop() closed its sockets under it
                log.exception(
                    "broker %s: the %s loop raised; restarting it", self.display_url, name
                )
                gevent.sleep(1.0)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        conn = self._pubconn
        if conn is not None and conn.unsent and not self._down:
            # What callers' writes left over, briefly.
            with gevent.Timeout(self.stop_timeout / 2, False), contextlib.suppress(OSError):
                conn.flush()
        self._interest.release_all()
        gevent.killall(self._greenlets, block=True, timeout=1.0)
        self._greenlets = []
        if not self._down:
            # Bounded: Redis may have just gone away and a connect or read could wait.
            with gevent.Timeout(self.stop_timeout, False):
                try:
                    for key in list(self._held):
                        self._release_script(keys=[key], args=[self.node_id])
                    self._held.clear()
                    pipe = self._client.pipeline(transaction=False)
                    pipe.delete(self._conns_key)
                    pipe.zrem(self._nodes_key, self.node_id)
                    pipe.execute()
                except (RedisError, OSError) as exc:
                    log.debug("broker %s: cleanup on stop failed: %s", self.display_url, exc)
        self._outbox.clear()
        if self._pubconn is not None:
            self._pubconn.close()
            self._pubconn = None
        self._pool.disconnect()
        self._quick_pool.disconnect()

    def metrics_snapshot(self) -> dict[str, Any]:
        """Counters and state for the metrics (see blaze_green.metrics)."""
        contact = self._last_contact
        conn = self._pubconn
        # What waits to reach Redis: the outbox (before the first connection) plus what the
        # publish socket has not taken; each is bounded (outbox_size, unsent_bytes).
        backlog = sum(len(c) for c in self._outbox) + (len(conn.unsent) if conn else 0)
        return {
            "published": self.stats["published"],
            "received": self.stats["received"],
            "dropped": self.stats["dropped"],
            "ignored": self.stats["ignored"],
            "subscriptions": len(self._interest.watched),
            "reconnects": self.stats["reconnects"],
            "backlog_bytes": backlog,
            "connected": self._subscribed_once and not self._down and not self._stopped,
            "seconds_since_contact": None if contact is None else time.monotonic() - contact,
        }

    # -- outage bookkeeping ---------------------------------------------------------------

    def _fail(self, exc: BaseException, started: float) -> None:
        """An operation begun at `started` (monotonic) failed."""
        if not isinstance(exc, _OUTAGE_ERRORS):
            self._error(exc)  # an answer from a reachable server (ACL, wrong type...)
            return
        if self._down or started < self._recovered_at or self._stopped:
            return  # the outage is already known, or the operation predates the recovery
        self._down = True
        self._up.clear()
        self._down_since = time.monotonic()
        self._dropped_at_outage = self.stats["dropped"]
        log.warning(
            "broker %s unreachable: %s; broadcasts reach local sessions only until it is back",
            self.display_url,
            str(exc).rstrip(".") or type(exc).__name__,
        )
        # Sockets opened before the outage are dead or soon will be: drop the idle ones now so
        # that nothing fails on a stale connection after the recovery.
        for pool in (self._pool, self._quick_pool):
            with contextlib.suppress(Exception):
                pool.disconnect(inuse_connections=False)

    def _ok(self, started: float) -> None:
        """An operation begun at `started` succeeded."""
        self._last_contact = time.monotonic()
        if not self._down or started < self._down_since:
            return
        self.stats["reconnects"] += 1
        self._down = False
        self._up.set()
        self._recovered_at = time.monotonic()
        lost = self.stats["dropped"] - self._dropped_at_outage
        log.info(
            "broker %s reachable again after %.1f s; cross-process delivery resumed "
            "(%d message(s) published meanwhile reached local sessions only)",
            self.display_url,
            self._recovered_at - self._down_since,
            lost,
        )

    def _error(self, exc: BaseException) -> None:
        now = time.monotonic()
        kind = type(exc).__name__
        if now - self._errors_logged.get(kind, float("-inf")) >= 60.0:  # one a minute per kind
            self._errors_logged[kind] = now
            log.error("broker %s: %s: %s", self.display_url, kind, exc)

    def _backoff(self, delay: float) -> float:
        """Wait about `delay` seconds (jittered), or less if another greenlet sees Redis come
        back meanwhile; returns the next delay."""
        pause = delay * (0.8 + 0.4 * secrets.randbelow(1000) / 1000)
        if self._down:
            self._up.wait(pause)
        else:
            gevent.sleep(pause)
        return min(delay * 2, self.backoff_max)

    # -- broadcast: publishing ------------------------------------------------------------

    def publish(self, path: str, opcode: int, payload: bytes) -> None:
        """Send one serialized message to the other processes now if the socket takes it,
        else queue it (bounded); never blocks and never yields."""
        if self._stopped:
            return
        if not self._pub_up:
            self.stats["dropped"] += 1
            return
        try:
            message = pack_message(self._node, path, opcode, payload)
        except struct.error:  # a path longer than 65,535 bytes
            self.stats["dropped"] += 1
            self._error(ValueError(f"path too long to publish: {path[:60]}..."))
            return
        command = encode_command(self.publish_command, self._interest.channel(path), message)
        conn = self._pubconn
        if conn is not None:
            if conn.write(command):
                if conn.unsent:
                    self._wake.set()  # the kernel took part of it: the writer sends the rest
                return
            if conn.broken is not None:
                self._wake.set()
                self.stats["dropped"] += 1
                return
            self._overflow()
            return
        # Not connected yet (starting): queue, bounded; the writer sends it once connected.
        outbox = self._outbox
        if len(outbox) >= self.outbox_size:
            outbox.popleft()
            self._overflow()
        outbox.append(command)

    def _overflow(self) -> None:
        self.stats["dropped"] += 1
        self.stats["overflowed"] += 1
        now = time.monotonic()
        if now - self._overflow_logged >= 60.0:  # at most one line a minute
            self._overflow_logged = now
            log.warning(
                "broker %s: publish backlog full: Redis does not keep up; messages are dropped "
                "for the other processes (%d so far)",
                self.display_url,
                self.stats["overflowed"],
            )

    def _publisher(self) -> None:
        """Connect the publish connection, hand it what queued meanwhile, send what the
        callers' writes left over; on a failure drop what is in flight and reconnect."""
        delay = self.backoff_min
        kwargs = self._pool.connection_kwargs
        tls = self._pool.connection_class is redis.SSLConnection
        while True:
            conn = PublishConnection(
                kwargs,
                client_name=f"blaze_green:{self.node_id}:pub",
                connect_timeout=kwargs.get("socket_connect_timeout") or 1.0,
                reply_timeout=kwargs.get("socket_timeout") or 2.0,
                max_unsent=self.unsent_bytes,
                tls=tls,
            )
            started = time.monotonic()
            try:
                conn.connect()
            except (RedisError, OSError, ReplyError, ValueError) as exc:
                conn.close()
                self._fail(exc, started)
                self._pub_lost(None)
                delay = self._backoff(delay)
                continue
            self._ok(started)
            delay = self.backoff_min
            self._pub_up = True
            while self._outbox:
                command = self._outbox.popleft()
                if not conn.write(command):
                    self._overflow()
            self._pubconn = conn
            reader = gevent.spawn(self._read_replies, conn)
            started = time.monotonic()
            try:
                while True:
                    self._wake.wait()
                    self._wake.clear()
                    if reader.dead:
                        raise conn.broken or ConnectionError("publish connection lost")
                    started = time.monotonic()
                    conn.flush()
            except (RedisError, OSError, ReplyError, ValueError) as exc:
                self._fail(exc, started)
            finally:
                self._pubconn = None
                reader.kill(block=False)
                conn.close()
            self._pub_lost(conn)
            delay = self._backoff(delay)

    def _pub_lost(self, conn: PublishConnection | None) -> None:
        """The publish connection failed: what it had not had answered may be lost."""
        lost = len(self._outbox) + (conn.unanswered if conn is not None else 0)
        self.stats["dropped"] += lost
        self._outbox.clear()
        self._pub_up = False

    def _read_replies(self, conn: PublishConnection) -> None:
        try:
            while True:
                started = time.monotonic()
                ok, errors = conn.read_replies(self.keepalive)
                self.stats["published"] += ok
                if ok:
                    self._ok(started)
                for message in errors:
                    self.stats["dropped"] += 1
                    self._error(ReplyError(message))
        except (OSError, ValueError) as exc:
            conn.broken = exc
            self._wake.set()

    # -- broadcast: subscribing -----------------------------------------------------------

    def watch(self, path: str) -> Event | None:
        """A session registers on `path` (see blaze_green.broker.interest): the Event to
        wait on when its subscription is being set up now and Redis is reachable, else None."""
        ev = self._interest.watch(path)
        if ev is None:
            return None
        self._sub_wake.set()
        return ev if self._sub_conn is not None else None

    def unwatch(self, path: str) -> None:
        """The last local session on `path` left: unsubscribe from its channel."""
        if self._interest.unwatch(path):
            self._sub_wake.set()

    def _channel_for(self, path: str) -> bytes:
        return self._channel_prefix + path.encode("utf-8", "surrogateescape")

    def _subscriber(self) -> None:
        delay = self.backoff_min
        while True:
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            started = time.monotonic()
            try:
                conn.connect()
                channels = self._interest.resubscribe()
                conn.send_command("SUBSCRIBE", self._control, *channels)
                reply = conn.read_response()
                if not reply or reply[0] != b"subscribe":
                    raise RedisError(f"unexpected reply to SUBSCRIBE: {reply!r}")
                self._ok(started)
                if not self._subscribed_once:
                    self._subscribed_once = True
                    log.info(
                        "broker %s: subscribed to %s as node %s",
                        self.display_url,
                        self._control,
                        self.node_id,
                    )
                delay = self.backoff_min
                self._sub_conn = conn
                self._sub_wake.set()  # changes queued while connecting
                self._listen(conn)
            except (RedisError, OSError) as exc:
                self._fail(exc, started)
            finally:
                self._sub_conn = None
                conn.disconnect()
            delay = self._backoff(delay)

    def _sub_writer(self) -> None:
        """The only greenlet that writes to the subscription connection once it listens:
        SUBSCRIBE/UNSUBSCRIBE as paths gain their first or lose their last session, and the
        keepalive PING."""
        while True:
            self._sub_wake.wait()
            self._sub_wake.clear()
            conn = self._sub_conn
            if conn is None:
                continue  # the subscriber subscribes everything watched when it connects
            commands = [encode_command(cmd, *chs) for cmd, chs in self._interest.take_changes()]
            if self._ping_due:
                self._ping_due = False
                commands.append(encode_command(b"PING"))
            if not commands:
                continue
            started = time.monotonic()
            try:
                conn.send_packed_command([b"".join(commands)], check_health=False)
            except (RedisError, OSError) as exc:
                # The listener then finds the connection closed; what is watched is
                # subscribed again on the next one.
                self._fail(exc, started)
                with contextlib.suppress(Exception):
                    conn.disconnect()

    def _listen(self, conn: Any) -> None:
        pinged = False
        while True:
            if not conn.can_read(timeout=self.keepalive):
                if pinged:
                    raise redis.exceptions.TimeoutError(
                        f"no answer to PING within {self.keepalive} s"
                    )
                self._ping_due = True
                self._sub_wake.set()
                pinged = True
                continue
            reply = conn.read_response()
            if not isinstance(reply, list):  # +PONG of a connection without subscriptions
                pinged = False
                continue
            kind = reply[0]
            if kind in (b"message", b"smessage"):
                self._on_message(reply[2])
            elif kind in (b"subscribe", b"ssubscribe"):
                self._interest.confirmed(reply[1])
            elif kind == b"pong":
                pinged = False
            elif kind == b"sunsubscribe":
                self._on_sunsubscribe(reply[1])

    def _on_sunsubscribe(self, channel: bytes) -> None:
        """Only on a Redis Cluster shard (blaze_green.broker.cluster): its slot moved."""

    def _on_message(self, data: bytes) -> None:
        try:
            node, path, opcode, payload = unpack_message(data)
        except (ValueError, struct.error) as exc:
            self.stats["malformed"] += 1
            if self.stats["malformed"] == 1:
                log.warning("broker %s: ignoring a malformed message: %s", self.display_url, exc)
            return
        if node == self._node:
            self.stats["own"] += 1  # ours: delivered locally when it was broadcast
            return
        if path not in self._interest.watched:
            # Published just before this process unsubscribed: nobody here is on that path.
            self.stats["ignored"] += 1
            return
        self.stats["received"] += 1
        # Framing is cheap; a second snapshot of the path's sessions to avoid it is not.
        self._host.deliver_remote(path, opcode, payload)

    # -- cluster counts -------------------------------------------------------------------

    def _counter(self) -> None:
        ttl_ms = int(self.count_ttl * 1000)
        while True:
            started = time.monotonic()
            try:
                counts = self._host.local_counts()
                now_ms = int(time.time() * 1000)
                pipe = self._client.pipeline(transaction=True)
                pipe.delete(self._conns_key)
                if counts:
                    pipe.hset(self._conns_key, mapping=counts)  # type: ignore[arg-type]
                    pipe.pexpire(self._conns_key, ttl_ms)
                pipe.zadd(self._nodes_key, {self.node_id: now_ms})
                # Members whose process died long ago; their hashes have expired anyway.
                pipe.zremrangebyscore(self._nodes_key, "-inf", now_ms - 60_000)
                pipe.pexpire(self._nodes_key, 120_000)
                pipe.execute()
            except (RedisError, OSError) as exc:
                self._fail(exc, started)
            else:
                self._ok(started)
            gevent.sleep(self.count_interval)

    def cluster_count(self, path: str) -> int:
        """Sessions on `path` across live processes: the other nodes' published counts (at
        most count_ttl old) plus this process's live count. While Redis is unreachable: the
        local count."""
        local = self._host.local_count(path)
        if self._down or self._stopped:
            return local
        started = time.monotonic()
        try:
            others = self._count_script(
                keys=[self._nodes_key],
                args=[self._conns_prefix, path, self.node_id],
                client=self._quick,
            )
        except (RedisError, OSError) as exc:
            self._fail(exc, started)
            return local
        self._ok(started)
        return local + int(others)

    # -- singletons -----------------------------------------------------------------------

    def run_singleton(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        key = f"{self.prefix}:singleton:{name}"
        ttl_ms = int(self.lock_ttl * 1000)
        while True:
            acquired: Any = False  # then redis-py's SET NX reply: True, or None when held
            # Right after an outage, give the holder (which renews every lock_renew seconds and
            # re-takes a key lost with Redis's data) the first chance, so two copies don't run.
            if not self._down and time.monotonic() - self._recovered_at > self.lock_renew + 1.0:
                started = time.monotonic()
                try:
                    acquired = self._client.set(key, self.node_id, nx=True, px=ttl_ms)
                except (RedisError, OSError) as exc:
                    self._fail(exc, started)
                else:
                    self._ok(started)
            if acquired:
                self._held.add(key)
                log.info("singleton %r runs in this process (node %s)", name, self.node_id)
                try:
                    done, value = self._hold(name, key, started, fn, args, kwargs)
                finally:
                    self._held.discard(key)
                    self._release(key)
                if done:
                    return value
            gevent.sleep(self.lock_retry)

    def _hold(
        self,
        name: str,
        key: str,
        acquired_at: float,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[bool, Any]:
        """Run the task while renewing the lease; (True, value) when it ended by itself,
        (False, None) when the lease was lost and the task killed."""
        result: dict[str, Any] = {}

        def body() -> None:
            try:
                result["value"] = fn(*args, **kwargs)
            except GreenletExit:
                raise
            except Exception:
                if self._stopped:
                    return  # stop() closed its sockets under it
                log.exception("singleton task %r raised", name)

        child = Greenlet(body)
        child.name = f"singleton:{name}"
        child.start()
        ttl_ms = int(self.lock_ttl * 1000)
        last_ok = acquired_at
        try:
            while True:
                child.join(timeout=self.lock_renew)
                if child.dead:
                    return True, result.get("value")
                started = time.monotonic()
                try:
                    held = self._renew_script(keys=[key], args=[self.node_id, ttl_ms])
                except (RedisError, OSError) as exc:
                    self._fail(exc, started)
                    if time.monotonic() - last_ok >= self.lock_ttl - self.lock_renew:
                        log.warning(
                            "singleton %r: cannot renew its lease (broker unreachable); "
                            "stopping it here before the lease lapses",
                            name,
                        )
                        return False, None
                    continue
                self._ok(started)
                if not held:
                    log.warning(
                        "singleton %r: the lease went to another process; stopping it here", name
                    )
                    return False, None
                last_ok = started
        finally:
            child.kill(block=True, timeout=1.0)

    def _release(self, key: str) -> None:
        if self._down:
            return
        started = time.monotonic()
        try:
            self._release_script(keys=[key], args=[self.node_id])
        except (RedisError, OSError) as exc:
            self._fail(exc, started)
