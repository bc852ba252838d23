"""WriterThreads: a write round's os.write calls spread over OS threads, results in order."""

from __future__ import annotations

import errno
import os
import socket

import pytest
from gevent import monkey

from blaze_green.config import Config, writer_thread_count
from blaze_green.ws.writer_threads import WriterThreads


def socket_pairs(n: int) -> list[tuple[socket.socket, socket.socket]]:
    pairs = [socket.socketpair() for _ in range(n)]
    for a, _ in pairs:
        a.setblocking(False)
    return pairs


def test_every_write_lands_once_on_its_own_descriptor_in_order():
    pairs = socket_pairs(300)
    try:
        datas = [f"frame-{i}".encode() for i in range(300)]
        results = WriterThreads(2).write([a.fileno() for a, _ in pairs], datas)
        assert results == [len(d) for d in datas]
        for (_, b), data in zip(pairs, datas, strict=True):
            assert b.recv(100) == data
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_helpers_really_write_from_another_os_thread():
    # Each write sleeps 10 ms with the GIL released (as a slow kernel write would): the helper
    # takes writes meanwhile, so two OS threads write. (Real thread ids and sleeps: the suite
    # may run with gevent's patches on.)
    get_ident = monkey.get_original("_thread", "get_ident")
    real_sleep = monkey.get_original("time", "sleep")
    pairs = socket_pairs(20)
    writers: set[int] = set()
    original = os.write

    def slow_write(fd: int, data: bytes) -> int:
        writers.add(get_ident())
        real_sleep(0.01)
        return original(fd, data)

    try:
        os.write = slow_write
        results = WriterThreads(2).write([a.fileno() for a, _ in pairs], [b"p"] * 20)
    finally:
        os.write = original
    assert results == [1] * 20
    assert len(writers) == 2
    for a, b in pairs:
        assert b.recv(10) == b"p"
        a.close()
        b.close()


def test_a_full_socket_and_a_bad_descriptor_are_reported_not_raised():
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        while True:
            a.send(b"x" * 65536)
    except BlockingIOError:
        pass
    good, peer = socket.socketpair()
    closed, other = socket.socketpair()
    bad_fd = closed.fileno()
    closed.close()
    try:
        results = WriterThreads(3).write([a.fileno(), bad_fd, good.fileno()], [b"z", b"z", b"ok"])
        assert isinstance(results[0], BlockingIOError)
        assert isinstance(results[1], OSError) and results[1].errno == errno.EBADF
        assert results[2] == 2 and peer.recv(10) == b"ok"
    finally:
        for s in (a, b, good, peer, other):
            s.close()


def test_an_unexpected_error_leaves_that_write_untaken_and_the_threads_alive(caplog):
    pairs = socket_pairs(300)
    fds = [a.fileno() for a, _ in pairs]
    threads = WriterThreads(2)
    try:
        datas: list = [b"w"] * 300
        datas[150] = "not bytes"  # os.write raises TypeError, which no session would cause
        results = threads.write(fds, datas)
        assert results[150] == 0  # "nothing taken": the session would keep its bytes
        assert results[:150] == [1] * 150 and results[151:] == [1] * 149
        assert "a write of a shared round failed" in caplog.text
        assert threads.write(fds, [b"x"] * 300) == [1] * 300  # both writers still work
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_a_forked_child_writes_with_threads_of_its_own():
    threads = WriterThreads(2)
    pairs = socket_pairs(4)
    fds = [a.fileno() for a, _ in pairs]
    assert threads.write(fds, [b"1"] * 4) == [1] * 4  # the parent's helper is now started
    pid = os.fork()
    if pid == 0:  # the parent's helper thread does not exist here: waiting on it would hang
        code = 0 if threads.write(fds, [b"2"] * 4) == [1] * 4 else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)  # pytest-timeout fails the test if the child hangs
    assert os.waitstatus_to_exitcode(status) == 0
    for a, b in pairs:
        assert b.recv(10) == b"12"
        a.close()
        b.close()


def test_write_threads_option():
    assert writer_thread_count(Config(write_threads=1)) == 1
    assert writer_thread_count(Config(write_threads=3)) == 3
    expected = 2 if len(os.sched_getaffinity(0)) >= 2 else 1
    assert writer_thread_count(Config()) == expected
    if len(os.sched_getaffinity(0)) >= 2:  # confined to one core, the default is one writer
        pid = os.fork()
        if pid == 0:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            os._exit(0 if writer_thread_count(Config()) == 1 else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    with pytest.raises(ValueError, match="write_threads must be >= 1"):
        Config(write_threads=0)
    with pytest.raises(TypeError, match="write_threads must be an int or None"):
        Config(write_threads=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 writers"):
        WriterThreads(1)
