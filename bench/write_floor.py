"""The floor under a write round: bare `os.write` of one small frame to each of N loopback sockets.

    python -m bench.write_floor [--sessions 15000] [--size 102] [--rounds 10]

No framework: N accepted TCP connections (TCP_NODELAY, non-blocking) whose peers live in a
child process that reads them all with epoll, as the load generator does; then ROUNDS rounds of
one `os.write` per socket, written by 1 OS thread, then by 2 (each taking the next socket from
one shared counter, as `WriterThreads` does). It prints the median round per writer count: what
the kernel (and the GIL's hand-offs) cost before blaze_green adds anything, so
`python -m bench.hostile --probes broadcast15k` can be read against it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def reader(port: int, n: int) -> None:
    """The child: N connections, every one read as soon as epoll says so."""
    _raise_fd_limit()
    socks = [socket.create_connection((HOST, port)) for _ in range(n)]
    poller = select.epoll()
    for s in socks:
        s.setblocking(False)
        poller.register(s.fileno(), select.EPOLLIN)
    print("ready", flush=True)
    while True:
        for fd, _ in poller.poll(-1, 1024):
            if not os.read(fd, 65536):
                return


def write_round(fds: list[int], frame: bytes, writers: int) -> None:
    take = itertools.count()
    n = len(fds)

    def share() -> None:
        write = os.write
        for i in take:
            if i >= n:
                return
            write(fds[i], frame)

    helpers = [threading.Thread(target=share) for _ in range(writers - 1)]
    for t in helpers:
        t.start()
    share()
    for t in helpers:
        t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=15000)
    ap.add_argument("--size", type=int, default=102, help="bytes per write (102: 100 + header)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--reader-port", type=int, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.reader_port:
        reader(ns.reader_port, ns.sessions)
        return
    _raise_fd_limit()
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.write_floor", "--sessions", str(ns.sessions)]
        + ["--reader-port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    conns = []
    try:
        for _ in range(ns.sessions):
            conn, _ = listener.accept()
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns.append(conn)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        fds = [c.fileno() for c in conns]
        frame = b"x" * ns.size
        print(f"| writers | median round ms ({ns.sessions} writes of {ns.size} B) | per write us |")
        print("|---:|---:|---:|")
        for writers in (1, 2):
            rounds = []
            for _ in range(ns.rounds + 1):
                time.sleep(0.3)  # the reader drains; the next round starts on idle sockets
                start = time.perf_counter()
                write_round(fds, frame, writers)
                rounds.append(time.perf_counter() - start)
            median = statistics.median(rounds[1:])  # the first round warms up
            print(f"| {writers} | {median * 1000:.1f} | {median * 1e6 / ns.sessions:.2f} |")
    finally:
        for c in conns:
            c.close()
        child.wait(timeout=30)
        listener.close()


if __name__ == "__main__":
    main()
