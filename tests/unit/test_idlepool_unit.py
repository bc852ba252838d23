"""The gunicorn worker's pool reclaims its longest-idle connection when full (idlepool.py)."""

import socket

from blaze_green.idlepool import IdleConnections, ReclaimingPool


class FakeSock:
    def __init__(self):
        self.shut = False

    def shutdown(self, how):
        assert how == socket.SHUT_RDWR
        self.shut = True


def test_reclaim_closes_the_oldest_idle_connection_first():
    idle = IdleConnections()
    socks = [FakeSock() for _ in range(3)]
    for i, sock in enumerate(socks):
        idle.waiting(i, sock)
    idle.active(0)  # got a byte: no longer idle
    assert idle.reclaim() and socks[1].shut and not socks[0].shut and not socks[2].shut
    assert idle.reclaim() and socks[2].shut
    assert not idle.reclaim()
    assert idle.reclaimed == 2


def test_a_connection_waiting_again_moves_to_the_back():
    idle = IdleConnections()
    a, b = FakeSock(), FakeSock()
    idle.waiting("a", a)
    idle.waiting("b", b)
    idle.active("a")
    idle.waiting("a", a)  # served, now idle in keep-alive: the newest
    idle.reclaim()
    assert b.shut and not a.shut


def test_full_pool_with_nothing_idle_reclaims_the_next_to_wait():
    pool = ReclaimingPool(1)
    pool.add(pool.greenlet_class(lambda: None))
    assert pool.full()  # nothing idle to reclaim yet
    sock = FakeSock()
    pool.idle.waiting("late", sock)
    assert sock.shut  # reclaimed as soon as it started waiting


def test_not_full_clears_a_stale_request():
    pool = ReclaimingPool(2)
    pool.idle.wanted = True
    assert not pool.full()
    sock = FakeSock()
    pool.idle.waiting("k", sock)
    assert not sock.shut
