"""The lifecycle rules, as data: every (state, ending) pair and what it must do."""

import pytest

from blaze_green.ws.lifecycle import CloseCode, Ending, Initiator, State, plan_for

OPEN, CLOSING, CLOSED = State.OPEN, State.CLOSING, State.CLOSED


def test_every_ending_from_open_starts_closing_and_takes_its_code():
    for ending in Ending:
        plan = plan_for(OPEN, ending)
        assert plan is not None, ending
        assert plan.state is CLOSING
        assert plan.takes_code


def test_who_starts_the_close():
    assert plan_for(OPEN, Ending.PEER_CLOSE).initiator is Initiator.CLIENT
    for ending in (Ending.LOCAL_CLOSE, Ending.OVERFLOW, Ending.PING_TIMEOUT, Ending.PROTOCOL_ERROR):
        assert plan_for(OPEN, ending).initiator is Initiator.SERVER, ending
    for ending in (Ending.EOF, Ending.WRITE_ERROR):
        assert plan_for(OPEN, ending).initiator is None  # the connection just ended


def test_once_closing_a_second_close_does_nothing_and_the_first_code_stands():
    for ending in (Ending.LOCAL_CLOSE, Ending.OVERFLOW, Ending.PING_TIMEOUT):
        assert plan_for(CLOSING, ending) is None
    for ending in (Ending.PEER_CLOSE, Ending.EOF, Ending.WRITE_ERROR, Ending.PROTOCOL_ERROR):
        plan = plan_for(CLOSING, ending)
        assert plan is not None and not plan.takes_code and not plan.send_close


@pytest.mark.parametrize("ending", list(Ending))
def test_closed_is_final(ending):
    assert plan_for(CLOSED, ending) is None


def test_overflow_keeps_the_frame_in_flight_leaves_the_registry_and_bounds_the_wait():
    plan = plan_for(OPEN, Ending.OVERFLOW)
    assert plan.drop_queue and plan.leave_registry and plan.send_close and plan.close_timer
    assert not plan.abort  # the close frame follows the tail; TCP drops after close_timeout


def test_ping_timeout_and_write_errors_drop_tcp_at_once():
    assert plan_for(OPEN, Ending.PING_TIMEOUT).abort
    assert plan_for(OPEN, Ending.WRITE_ERROR).abort
    assert not plan_for(OPEN, Ending.WRITE_ERROR).send_close


def test_the_reader_ends_after_peer_close_protocol_error_and_eof():
    for ending in (Ending.PEER_CLOSE, Ending.PROTOCOL_ERROR, Ending.EOF):
        assert plan_for(OPEN, ending).over, ending
    for ending in (Ending.LOCAL_CLOSE, Ending.OVERFLOW):
        assert not plan_for(OPEN, ending).over  # the reader waits for the peer's answer


def test_close_codes():
    assert CloseCode.TRY_AGAIN_LATER == 1013
    assert CloseCode.GOING_AWAY == 1001
    assert int(CloseCode.NO_STATUS) == 1005
