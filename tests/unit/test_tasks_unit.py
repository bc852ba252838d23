"""The task group on this thread's gevent hub (no server): held, started, counted, killed."""

import logging

import gevent
import pytest

from blaze_green.metrics import Metrics
from blaze_green.tasks import Task, TaskGroup, delay, resolve, task


@task
def ticker(log: list, n: int):
    for i in range(n):
        log.append(i)
        gevent.sleep(0)


def test_tasks_are_held_until_start_then_run():
    group = TaskGroup()
    log: list = []
    g = group.spawn(ticker(log, 3))
    gevent.sleep(0.01)
    assert log == [] and not g.started
    group.start()
    g.join(timeout=2)
    assert log == [0, 1, 2]
    group.kill()


def test_running_count_failures_and_kill(caplog):
    metrics = Metrics()
    group = TaskGroup(metrics)
    group.start()

    def forever():
        while True:
            gevent.sleep(0.01)

    def fails():
        raise ValueError("boom")

    group.spawn(forever)
    failing = group.spawn(fails)
    with caplog.at_level(logging.ERROR, logger="blaze_green"):
        failing.join(timeout=2)
    assert group.running == 1
    assert metrics.task_failures == 1
    assert "background task" in caplog.text and "boom" in caplog.text
    group.kill()
    assert group.running == 0


def test_a_second_start_restarts_held_tasks():
    group = TaskGroup()
    log: list = []
    group.spawn(ticker(log, 1))
    group.start()
    gevent.sleep(0.05)
    group.kill()
    group.start()  # served again (a test server per test): the same task afresh
    gevent.sleep(0.05)
    group.kill()
    assert log == [0, 0]


def test_resolve_checks_what_spawn_means():
    assert isinstance(ticker([], 1), Task)
    with pytest.raises(TypeError, match="call it to build the task"):
        resolve(ticker, (), {})
    with pytest.raises(TypeError, match="needs a callable"):
        resolve(42, (), {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no extra arguments"):
        resolve(ticker([], 1), (1,), {})
    with pytest.raises(ValueError):
        delay(-1)
