"""The Redis Cluster broker: `redis+cluster://host:port,host:port` with sharded pub/sub.

Channels are the same per-path channels as on one Redis (``{prefix}:bcast:0:{path}``), but
published with SPUBLISH and subscribed with SSUBSCRIBE, so each lives on the master that owns
its hash slot and the cluster's masters share the pub/sub traffic. One `ShardLink` per master
does what `RedisBroker` does on one Redis (a publish connection written without blocking, a
subscription connection, interest-based routing), for the paths whose channel that master
owns. A greenlet reads the slot map (CLUSTER SLOTS from any node that answers) every second,
and every 0.2 s while a shard is unreachable: when a master fails and its replica takes over,
the paths of the old master are subscribed again on the new one and publishing goes there.
What was published to the failed master meanwhile is lost (pub/sub keeps nothing); nothing is
delivered twice, since each broadcast goes to exactly one shard.

Counts and singletons use a `redis.RedisCluster` client; their keys carry the hash tag
``{prefix}`` so that the count script's keys share one slot.
"""

from __future__ import annotations

import bisect
import logging
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import gevent
from gevent import Greenlet
from gevent.event import Event

from .redis import RedisBroker
from .resp import encode_command

try:
    import redis
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]
    RedisError = Exception  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from . import BrokerHost

__all__ = ["ClusterBroker", "ShardLink", "parse_cluster_url"]

log = logging.getLogger("blaze_green")

Address = tuple[str, int]


def parse_cluster_url(url: str) -> tuple[list[Address], str, str]:
    """(startup nodes, URL of the first node for redis-py, URL safe to log)."""
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    nodes: list[Address] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bad node {item!r} in {url!r}: use redis+cluster://host:port,...")
        nodes.append((host, int(port)))
    first = f"redis://{auth + '@' if auth else ''}{nodes[0][0]}:{nodes[0][1]}/0"
    if parts.query:
        first += "?" + parts.query
    shown = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in nodes)
    return nodes, first, shown


class ShardLink(RedisBroker):
    """Broadcast through one master of a Redis Cluster (sharded pub/sub); no counts, no
    singletons: the `ClusterBroker` that owns it does those."""

    publish_command = b"SPUBLISH"
    subscribe_command = b"SSUBSCRIBE"
    unsubscribe_command = b"SUNSUBSCRIBE"
    merge_subscriptions = False  # one SSUBSCRIBE per channel: channels of one share a slot

    def __init__(self, url: str, host: BrokerHost, node_id: str, **options: Any) -> None:
        super().__init__(url, host, **options)
        self.node_id = node_id
        self._node = node_id.encode("ascii", "replace")[:255]
        self.moved: set[bytes] = set()  # channels the server unsubscribed us from

    def start(self) -> None:
        if self._greenlets or self._stopped:
            return
        for name, fn in (
            ("publisher", self._publisher),
            ("subscriber", self._subscriber),
            ("subscription writer", self._sub_writer),
        ):
            g = Greenlet(self._guard, name, fn)
            g.name = f"blaze_green.broker.shard.{name}"
            g.start()
            self._greenlets.append(g)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._interest.release_all()
        gevent.killall(self._greenlets, block=True, timeout=1.0)
        self._greenlets = []
        if self._pubconn is not None:
            self._pubconn.close()
            self._pubconn = None
        self._pool.disconnect()
        self._quick_pool.disconnect()

    def _subscriber(self) -> None:
        delay = self.backoff_min
        while True:
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            started = time.monotonic()
            try:
                conn.connect()
                conn.send_command("PING")
                if conn.read_response() != b"PONG":
                    raise RedisError("unexpected reply to PING")
                self._ok(started)
                channels = self._interest.resubscribe()
                if channels:
                    commands = b"".join(encode_command(b"SSUBSCRIBE", ch) for ch in channels)
                    conn.send_packed_command([commands], check_health=False)
                self._subscribed_once = True
                delay = self.backoff_min
                self._sub_conn = conn
                self._sub_wake.set()
                self._listen(conn)
            except (RedisError, OSError) as exc:
                self._fail(exc, started)
            finally:
                self._sub_conn = None
                conn.disconnect()
            delay = self._backoff(delay)

    def _on_sunsubscribe(self, channel: bytes) -> None:
        if channel in self._interest.watched.values():
            self.moved.add(channel)  # the slot moved: the ClusterBroker moves the path


class ClusterBroker(RedisBroker):
    """`redis+cluster://` (see the module docstring)."""

    refresh_interval = 1.0
    refresh_interval_down = 0.2

    def __init__(self, url: str, host: BrokerHost, **options: Any) -> None:
        if redis is None:
            raise ImportError("the Redis broker needs redis-py: pip install 'blaze-green[redis]'")
        self.startup, first, shown = parse_cluster_url(url)
        link_options = {k: v for k, v in options.items() if hasattr(ShardLink, k)}
        super().__init__(first, host, **options)
        self.display_url = shown
        self._first_url = first
        self._link_options = link_options
        tag = "{" + self.prefix + "}"  # one slot for the nodes set and every count hash
        self._nodes_key = f"{tag}:nodes"
        self._conns_prefix = f"{tag}:conns:"
        self._conns_key = self._conns_prefix + self.node_id
        kw = self._pool.connection_kwargs
        common: dict[str, Any] = dict(
            startup_nodes=[cast(Any, redis.cluster.ClusterNode)(h, p) for h, p in self.startup],
            password=kw.get("password"),
            username=kw.get("username"),
            protocol=2,
            client_name=f"blaze_green:{self.node_id}",
        )
        self._client = cast(Any, redis.RedisCluster)(
            socket_connect_timeout=1.0, socket_timeout=2.0, **common
        )
        self._quick = cast(Any, redis.RedisCluster)(
            socket_connect_timeout=0.5, socket_timeout=0.5, **common
        )
        self._count_script = self._client.register_script(self._count_script.script)
        self._renew_script = self._client.register_script(self._renew_script.script)
        self._release_script = self._client.register_script(self._release_script.script)
        self._links: dict[Address, ShardLink] = {}
        self._starts: list[int] = []  # slot ranges of the map, sorted by first slot
        self._ranges: list[tuple[int, int, Address]] = []
        self._path_link: dict[str, Address] = {}  # watched path -> the master it is on
        self._known: list[Address] = list(self.startup)
        self._mapped = Event()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._greenlets or self._stopped:
            return
        for name, fn in (("counts", self._counter), ("slot map", self._mapper)):
            g = Greenlet(self._guard, name, fn)
            g.name = f"blaze_green.broker.{name}"
            g.start()
            self._greenlets.append(g)

    def stop(self) -> None:
        for link in list(self._links.values()):
            link.stop()
        self._links.clear()
        super().stop()
        for client in (self._client, self._quick):
            try:
                client.close()
            except Exception as exc:  # closing a cluster client must not fail a stop
                log.debug("broker %s: close: %s", self.display_url, exc)

    def metrics_snapshot(self) -> dict[str, Any]:
        out = super().metrics_snapshot()
        for link in self._links.values():
            snap = link.metrics_snapshot()
            for key in (
                "published",
                "received",
                "ignored",
                "dropped",
                "reconnects",
                "backlog_bytes",
            ):
                out[key] += snap[key]
        out["own"] = self.stats["own"] + sum(link.stats["own"] for link in self._links.values())
        out["subscriptions"] = len(self._path_link)
        out["connected"] = bool(self._links) and all(
            link.metrics_snapshot()["connected"] for link in self._links.values()
        )
        return out

    # -- routing ---------------------------------------------------------------------------

    def _owner(self, path: str) -> Address | None:
        if not self._ranges:
            return None
        slot = redis.crc.key_slot(self._channel_for(path))
        i = bisect.bisect_right(self._starts, slot) - 1
        if i < 0:
            return None
        lo, hi, addr = self._ranges[i]
        return addr if lo <= slot <= hi else None

    def publish(self, path: str, opcode: int, payload: bytes) -> None:
        owner = self._owner(path)
        link = self._links.get(owner) if owner is not None else None
        if link is None:
            self.stats["dropped"] += 1  # no slot map yet
            return
        link.publish(path, opcode, payload)

    def watch(self, path: str) -> Event | None:
        addr = self._path_link.get(path) or self._owner(path)
        if addr is None or addr not in self._links:
            self._path_link.setdefault(path, ("", 0))  # placed once the map is known
            return None
        self._path_link[path] = addr
        return self._links[addr].watch(path)

    def unwatch(self, path: str) -> None:
        addr = self._path_link.pop(path, None)
        link = self._links.get(addr) if addr is not None else None
        if link is not None:
            link.unwatch(path)

    # -- the slot map ----------------------------------------------------------------------

    def _mapper(self) -> None:
        while True:
            started = time.monotonic()
            ranges = self._read_slots()
            if ranges is not None:
                self._ok(started)
                self._apply(ranges)
            down = ranges is None or any(
                not link.metrics_snapshot()["connected"] or link.moved
                for link in self._links.values()
            )
            gevent.sleep(self.refresh_interval_down if down else self.refresh_interval)

    def _read_slots(self) -> list[tuple[int, int, Address]] | None:
        """CLUSTER SLOTS from the first node that answers; None if none does."""
        for host, port in list(self._known):
            client = redis.Redis(
                host=host,
                port=port,
                password=self._pool.connection_kwargs.get("password"),
                username=self._pool.connection_kwargs.get("username"),
                socket_connect_timeout=0.5,
                socket_timeout=0.5,
                protocol=2,
            )
            try:
                reply = cast(Any, client).execute_command("CLUSTER SLOTS")
            except (RedisError, OSError):
                continue
            finally:
                client.close()
            ranges = []
            known = set(self._known)
            for entry in reply:
                if isinstance(entry, dict):  # redis-py's parsed form: {(lo, hi): {...}}
                    continue
                lo, hi, master = int(entry[0]), int(entry[1]), entry[2]
                addr = (_text(master[0]) or host, int(master[1]))
                ranges.append((lo, hi, addr))
                for node in entry[2:]:
                    known.add((_text(node[0]) or host, int(node[1])))
            if isinstance(reply, dict):
                for (lo, hi), info in reply.items():
                    addr = (_text(info["primary"][0]) or host, int(info["primary"][1]))
                    ranges.append((int(lo), int(hi), addr))
                    for rep in info.get("replicas", []):
                        known.add((_text(rep[0]) or host, int(rep[1])))
                    known.add(addr)
            if not ranges:
                continue
            self._known = sorted(known)
            return sorted(ranges)
        return None

    def _apply(self, ranges: list[tuple[int, int, Address]]) -> None:
        changed = ranges != self._ranges
        if changed:
            self._ranges = ranges
            self._starts = [lo for lo, _, _ in ranges]
        masters = {addr for _, _, addr in ranges}
        for addr in masters - set(self._links):
            host, port = addr
            url = self._first_url.replace(
                f"{self.startup[0][0]}:{self.startup[0][1]}", f"{host}:{port}", 1
            )
            link = ShardLink(url, self._host, self.node_id, **self._link_options)
            self._links[addr] = link
            link.start()
        moved = set().union(*(link.moved for link in self._links.values()))
        for link in self._links.values():
            link.moved.clear()
        # Paths on the wrong master (a failover, or not placed yet): subscribe where they live.
        for path, addr in list(self._path_link.items()):
            owner = self._owner(path)
            if owner is None:
                continue
            if owner != addr or self._channel_for(path) in moved:
                old = self._links.get(addr)
                if old is not None and owner != addr:
                    old.unwatch(path)
                self._path_link[path] = owner
                self._links[owner].watch(path)
        for addr in set(self._links) - masters:  # no longer a master
            gone = self._links.pop(addr)
            gone.stop()
            for key, value in gone.stats.items():  # counters never go backwards
                self.stats[key] += value
        if changed and not self._mapped.is_set():
            self._mapped.set()
            self._subscribed_once = True
            log.info(
                "broker %s: subscribed to %s on %d masters (sharded pub/sub) as node %s",
                self.display_url,
                self._control,
                len(masters),
                self.node_id,
            )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
