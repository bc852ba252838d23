"""A throwaway redis-server for tests: its own free port, no persistence, stopped by the test."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from blaze_green.testing import free_port

__all__ = ["RedisCluster", "RedisServer", "redis_binary"]


def redis_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """`redis-server --port P --bind 127.0.0.1 --save '' --appendonly no`; `kill()` and
    `start()` again reuse the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="blaze-redis-")
        self.extra: list[str] = []  # more redis-server arguments (kept for a restart)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0, extra: list[str] | None = None) -> RedisServer:
        if extra is not None:
            self.extra = list(extra)
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
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
                self._dir,
                "--loglevel",
                "warning",
                *(extra or self.extra),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING within {timeout} s")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command in the inline protocol; the raw reply (for small checks)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(" ".join(args).encode() + b"\r\n")
            return s.recv(65536)

    def numsub(self, channel: str) -> int:
        """How many connections are subscribed to `channel` (PUBSUB NUMSUB)."""
        reply = self.command("PUBSUB", "NUMSUB", channel)
        return int(reply.rsplit(b":", 1)[1].strip())

    def kill(self) -> None:
        """SIGKILL: as abrupt as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid and free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisCluster:
    """A real Redis Cluster on free ports: `masters` masters with one replica each
    (`redis-server --cluster-enabled yes`, then `redis-cli --cluster create ...
    --cluster-replicas 1`), node timeout 1 s so that a replica takes over quickly. Every
    server is stopped by `stop()`."""

    def __init__(self, masters: int = 3) -> None:
        self.servers = [RedisServer(_cluster_port()) for _ in range(2 * masters)]
        self.masters = masters

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers[:2])

    def start(self, timeout: float = 30.0) -> RedisCluster:
        extra = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"]
        try:
            for s in self.servers:
                s.start(extra=extra + ["--cluster-config-file", f"nodes-{s.port}.conf"])
            cli = shutil.which("redis-cli")
            if cli is None:
                raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
            done = subprocess.run(
                [cli, "--cluster", "create"]
                + [f"127.0.0.1:{s.port}" for s in self.servers]
                + ["--cluster-replicas", "1", "--cluster-yes"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
            if done.returncode:
                raise RuntimeError(
                    f"redis-cli --cluster create failed: {done.stdout[-500:]!r} "
                    f"{done.stderr[-500:]!r}"
                )
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def live(self) -> list[RedisServer]:
        return [s for s in self.servers if s.proc is not None and s.proc.poll() is None]

    def wait_ok(self, timeout: float) -> None:
        """Until every live node reports cluster_state:ok with `masters` masters serving and
        every replica is in sync (a replica that never synced would not take over)."""
        want = f"cluster_size:{self.masters}".encode()
        deadline = time.monotonic() + timeout
        while True:
            states = [s.command("CLUSTER", "INFO") for s in self.live()]
            repl = [s.command("INFO", "replication") for s in self.live()]
            synced = all(b"role:master" in r or b"master_link_status:up" in r for r in repl)
            if synced and all(b"cluster_state:ok" in st and want in st for st in states):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"the cluster did not reach cluster_state:ok: {states[:1]}")
            time.sleep(0.1)

    def master_of(self, key: str) -> RedisServer:
        """The live master that owns `key`'s slot."""
        any_live = self.live()[0]
        slot = int(any_live.command("CLUSTER", "KEYSLOT", key).strip().lstrip(b":"))
        for line in any_live.command("CLUSTER", "NODES").decode().splitlines():
            parts = line.split()
            if len(parts) < 8 or "master" not in parts[2] or "fail" in parts[2]:
                continue
            port = int(parts[1].split(":")[1].split("@")[0])
            for rng in parts[8:]:
                lo, _, hi = rng.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    return next(s for s in self.servers if s.port == port)
        raise RuntimeError(f"no master owns slot {slot}")

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
