"""WriteScheduler's window rule, with a fake clock and fake sessions (no sockets).

The real-server behaviour (a burst to 1,000 clients in ~1,000 sends with a long window) is in
test_realtime.py; this pins down when a burst is written in rounds.
"""

import pytest

from blaze_green.ws import writes as writes_module
from blaze_green.ws.writes import WriteScheduler


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        return self.now


class FakeLoop:
    def __init__(self):
        self.callbacks = []

    def run_callback(self, fn):
        self.callbacks.append(fn)


class FakeSession:
    """Flushing costs `cost` seconds of the fake clock, like one send."""

    def __init__(self, clock, loop, cost):
        self.clock, self._loop, self.cost = clock, loop, cost
        self.flushes = 0

    def flush_writes(self):
        self.flushes += 1
        self.clock.now += self.cost


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(writes_module, "time", fake)
    return fake


def sessions(clock, n, cost):
    loop = FakeLoop()
    return loop, [FakeSession(clock, loop, cost) for _ in range(n)]


def test_a_short_burst_waits_for_the_yield(clock):
    writes = WriteScheduler(budget=0.002)
    loop, group = sessions(clock, 3, 0.0)
    writes.bind(loop)
    for ws in group:
        writes.schedule(ws)
    clock.now += 0.001  # less than the window: nothing written yet
    writes.flush_if_due()
    assert [ws.flushes for ws in group] == [0, 0, 0]
    assert len(loop.callbacks) == 1  # one hub callback for all of them
    loop.callbacks[0]()  # the sender yielded
    assert [ws.flushes for ws in group] == [1, 1, 1]


def test_a_long_burst_is_written_once_the_window_has_passed(clock):
    writes = WriteScheduler(budget=0.002)
    loop, group = sessions(clock, 2, 0.0)
    writes.bind(loop)
    for ws in group:
        writes.schedule(ws)
    clock.now += 0.0021
    writes.flush_if_due()
    assert [ws.flushes for ws in group] == [1, 1]
    writes.flush_if_due()  # nothing queued since: no empty round
    assert [ws.flushes for ws in group] == [1, 1]


def test_the_window_grows_to_an_eighth_of_a_long_round_and_shrinks_back(clock):
    writes = WriteScheduler(budget=0.002)
    loop, many = sessions(clock, 5000, 0.000008)  # a 40 ms round, like 5,000 sockets here
    writes.bind(loop)
    for ws in many:
        writes.schedule(ws)
    writes.flush()
    assert writes.window == pytest.approx(0.040 / WriteScheduler.ROUND_SHARE)

    for ws in many:
        writes.schedule(ws)
    clock.now += 0.003  # past the 2 ms floor, within the 5 ms window: keep queueing
    writes.flush_if_due()
    assert many[0].flushes == 1
    clock.now += 0.0021  # 5 ms since the first queued frame: write the round
    writes.flush_if_due()
    assert many[0].flushes == 2

    _, few = sessions(clock, 10, 0.000008)  # a short round: back to the floor
    for ws in few:
        writes.schedule(ws)
    writes.flush()
    assert writes.window == 0.002
