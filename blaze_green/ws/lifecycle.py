"""How a WebSocket session ends: its states, the close codes, and one rule per way of ending.

Pure data, no I/O (in the manner of h11's `_state.py`): `WebSocket` applies the `Plan` that
`plan_for(state, ending)` returns and nothing else changes a session's state, so every way a
session can end is written down once, here.

A session is OPEN from the `101` on, CLOSING once either side has started to close, and CLOSED
when its reader has finished (`on_close` has run). The seven ways a session ends, and the rules:

OPEN + PEER_CLOSE      the peer's close frame: echo its code (RFC 6455 5.5.1), wait until the echo
                       is written (at most close_timeout), close TCP (the server closes first,
                       RFC 6455 7.1.1). The peer started the close.
OPEN + LOCAL_CLOSE     `ws.close()`, a callback that raised (1011) or shutdown (1001): queue our
                       close frame; the peer has close_timeout to answer, then TCP is dropped.
OPEN + OVERFLOW        more than send_queue_size messages (or send_queue_bytes) waiting (1013):
                       queued messages are dropped at once (only the unsent rest of a frame
                       already being written is kept), the close frame follows that rest, the
                       session leaves the registry at once, and TCP is dropped if all that is not
                       written within close_timeout.
OPEN + PING_TIMEOUT    no pong within ping_timeout (1011): write the close frame if the socket
                       takes it now, drop TCP at once (the peer is gone or stuck).
OPEN + PROTOCOL_ERROR  the peer broke RFC 6455 (1002, 1007, 1009): queue our close frame, wait
                       until it is written (at most close_timeout), close TCP without waiting for
                       the peer's answer (RFC 6455 7.1.7, "fail the connection").
OPEN + WRITE_ERROR     the socket refused a write: 1006, buffers dropped, TCP dropped.
OPEN + EOF             TCP ended without a close frame: 1006.
CLOSING + PEER_CLOSE   the answer to our close frame: the session is over, our code stands.
CLOSING + EOF          the same without a close frame: over, our code stands.
CLOSING + WRITE_ERROR  buffers and TCP dropped, our code stands.
CLOSING + PROTOCOL_ERROR  we already sent our close frame: wait for it to be written, end.
CLOSING + anything else, CLOSED + anything: nothing happens (one close per session).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = ["CloseCode", "Ending", "Initiator", "Plan", "State", "plan_for", "NORMAL_CLOSE_CODES"]


class State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class CloseCode(enum.IntEnum):
    """RFC 6455 7.4.1 status codes (and 1012-1014 from the IANA registry)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutdown
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # reported, never sent: the close frame had no code
    ABNORMAL = 1006  # reported, never sent: no close frame at all
    INVALID_DATA = 1007  # invalid UTF-8
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011  # a callback raised; a ping timeout
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013  # slow consumer: the send queue overflowed
    BAD_GATEWAY = 1014


NORMAL_CLOSE_CODES: Final = frozenset({CloseCode.NORMAL, CloseCode.GOING_AWAY, CloseCode.NO_STATUS})


class Ending(enum.Enum):
    """The seven ways a session ends."""

    PEER_CLOSE = "peer close"
    LOCAL_CLOSE = "local close"  # ws.close(), a callback error, shutdown
    OVERFLOW = "overflow"
    PING_TIMEOUT = "ping timeout"
    PROTOCOL_ERROR = "protocol error"
    WRITE_ERROR = "write error"
    EOF = "eof"


class Initiator(enum.Enum):
    """Who started the close."""

    SERVER = "server"
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class Plan:
    """What the session does for one transition (see the module docstring)."""

    state: State  # the state after the transition
    initiator: Initiator | None = None  # set when this transition starts the close
    takes_code: bool = False  # the session's close code becomes this transition's code
    send_close: bool = False  # queue a close frame with the code (an echo for PEER_CLOSE)
    drop_queue: bool = False  # drop queued messages now (keeping the rest of a frame in flight)
    leave_registry: bool = False  # leave sessions()/connections() now, before the session ends
    abort: bool = False  # drop TCP now (after one attempt to write what is queued)
    close_timer: bool = False  # drop TCP if the peer has not finished within close_timeout
    wait_written: bool = False  # the reader waits (at most close_timeout) for the queue to drain
    over: bool = False  # the reader ends the session after this transition


_S, _C = Initiator.SERVER, Initiator.CLIENT
_OPEN, _CLOSING = State.OPEN, State.CLOSING
_RULES: Final[dict[tuple[State, Ending], Plan]] = {
    (_OPEN, Ending.PEER_CLOSE): Plan(
        _CLOSING, _C, takes_code=True, send_close=True, wait_written=True, over=True
    ),
    (_OPEN, Ending.LOCAL_CLOSE): Plan(
        _CLOSING, _S, takes_code=True, send_close=True, close_timer=True
    ),
    (_OPEN, Ending.OVERFLOW): Plan(
        _CLOSING,
        _S,
        takes_code=True,
        send_close=True,
        drop_queue=True,
        leave_registry=True,
        close_timer=True,
    ),
    (_OPEN, Ending.PING_TIMEOUT): Plan(_CLOSING, _S, takes_code=True, send_close=True, abort=True),
    (_OPEN, Ending.PROTOCOL_ERROR): Plan(
        _CLOSING, _S, takes_code=True, send_close=True, wait_written=True, over=True
    ),
    (_OPEN, Ending.WRITE_ERROR): Plan(_CLOSING, takes_code=True, drop_queue=True, abort=True),
    (_OPEN, Ending.EOF): Plan(_CLOSING, takes_code=True, drop_queue=True, over=True),
    (_CLOSING, Ending.PEER_CLOSE): Plan(_CLOSING, over=True),
    (_CLOSING, Ending.EOF): Plan(_CLOSING, drop_queue=True, over=True),
    (_CLOSING, Ending.WRITE_ERROR): Plan(_CLOSING, drop_queue=True, abort=True),
    (_CLOSING, Ending.PROTOCOL_ERROR): Plan(_CLOSING, wait_written=True, over=True),
}


def plan_for(state: State, ending: Ending) -> Plan | None:
    """The plan for `ending` in `state`, or None when nothing is to be done."""
    return _RULES.get((state, ending))
