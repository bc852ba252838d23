"""One WebSocket session: a reader on the session's greenlet and one writer path in the hub.

Reading: the handler greenlet that accepted the connection reads, feeds the sans-I/O parser and
runs the callbacks, so callbacks are plain blocking code and one session never runs two at once.

Writing: every frame (messages, pongs, pings, close) is appended to one per-session buffer.
A hub loop callback (no greenlet switch) writes everything pending in one non-blocking send;
what the socket does not take waits for an I/O watcher to report writability. Frames never
interleave, no greenlet ever blocks in a send, and two senders can never wait on the same socket
(gevent's ConcurrentObjectUseError). TCP_NODELAY stays on for latency while bursts still batch.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gevent import GreenletExit, get_hub
from gevent.event import Event
from greenlet import greenlet as RawGreenlet

from ..models import dumps
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    FrameParser,
    Message,
    Ping,
    Pong,
    ProtocolError,
    close_payload,
    encode_frame,
)

if TYPE_CHECKING:
    from ..app import App, WebSocketHandlers

__all__ = ["WebSocket", "ConnectionClosed", "WriteScheduler", "frame_for", "encode_message"]

log = logging.getLogger("blaze_green")

OPEN, CLOSING, CLOSED = 0, 1, 2
NORMAL_CLOSE_CODES = frozenset({1000, 1001, 1005})
RECV_SIZE = 65536


class ConnectionClosed(Exception):
    """`send` on a session that is closing or closed."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"the WebSocket session is closed (code {code})")
        self.code = code
        self.reason = reason


def encode_message(data: Any) -> tuple[int, bytes]:
    """(opcode, payload) for a message: str is text, bytes-like binary, anything else is
    serialized to JSON text (the one place messages are serialized)."""
    if isinstance(data, str):
        return OP_TEXT, data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return OP_BINARY, bytes(data)
    return OP_TEXT, dumps(data).encode("utf-8")


def frame_for(data: Any) -> bytes:
    """One server frame for a message: str is text, bytes-like binary, anything else JSON text."""
    return encode_frame(*encode_message(data))


class WriteScheduler:
    """Decides when queued frames are written, for all the sessions of one app.

    Sessions with queued frames are written by one hub loop callback once the sender yields,
    so a burst (200 broadcasts in a row) leaves in one send per socket. A burst that keeps the
    hub busy for longer than the window is written in rounds from the sending greenlet, each
    round one send per socket for everything queued since the last, so early messages are not
    held until the burst ends.

    The window is `budget` (App's `coalesce_window`, 2 ms) or 1/`ROUND_SHARE` of the last
    round's duration, whichever is longer. A message waits about one window plus one round, and
    a round costs one send per socket whatever it carries, so with a fixed 2 ms window 5,000
    subscribers spent 20 parts writing for each part producing; tying the window to the round
    caps that share while adding only a fraction of a round to the wait. (Measured with `python
    -m bench --scenarios fanout`; a 20 ms fixed window doubles throughput but makes p99 latency
    worse than websockets'.)
    """

    ROUND_SHARE = 8

    __slots__ = ("_dirty", "_since", "_scheduled", "_window", "budget")

    def __init__(self, budget: float = 0.002) -> None:
        self._dirty: list[WebSocket] = []
        self._since = 0.0
        self._scheduled = False
        self._window = budget
        self.budget = budget

    def schedule(self, ws: WebSocket) -> None:
        if not self._dirty:
            self._since = time.monotonic()
        self._dirty.append(ws)
        if not self._scheduled:
            self._scheduled = True
            ws._loop.run_callback(self._run)

    def _run(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write every session's pending frames now (non-blocking sends)."""
        dirty, self._dirty = self._dirty, []
        start = time.monotonic()
        for ws in dirty:
            ws._flush()
        self._window = max(self.budget, (time.monotonic() - start) / self.ROUND_SHARE)

    def flush_if_due(self) -> None:
        if self._dirty and time.monotonic() - self._since >= self._window:
            self.flush()


class WebSocket:
    """A WebSocket session, handed to `on_open`, `on_message` and `on_close`."""

    def __init__(
        self,
        app: App,
        handlers: WebSocketHandlers,
        sock: socket.socket,
        environ: dict[str, Any],
        path: str,
        subprotocol: str | None = None,
        user_data: Any = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.environ = environ
        self.path = path
        self.subprotocol = subprotocol
        self.user_data = user_data
        self.params = params or {}
        self.close_code: int | None = None  # the code this session ended with (1006: no close)
        self.close_reason = ""
        self._handlers = handlers
        self._sock = sock
        self._raw = getattr(sock, "_sock", sock)  # the non-blocking OS socket, for hub-side sends
        self._loop = get_hub().loop
        self._state = OPEN
        self._out: list[bytes] = []
        self._in_flight: memoryview | None = None
        self._in_flight_count = 0
        self._flush_scheduled = False
        self._watcher: Any = None
        self._drained: Event | None = None
        self._close_timer: Any = None
        self._ping_timer: Any = None
        self._pong_timer: Any = None
        self._ping_payload: bytes | None = None
        self._queue_limit = app.config.send_queue_size
        self._writes: WriteScheduler = app._writes

    # -- public API -----------------------------------------------------------------------

    @property
    def remote_addr(self) -> str | None:
        return self.environ.get("REMOTE_ADDR")

    @property
    def closed(self) -> bool:
        """True once the session is closing or closed: `send` no longer delivers."""
        return self._state != OPEN

    def send(self, data: Any) -> None:
        """Queue one message: str as text, bytes-like as binary, dict/list/Json/models as JSON.

        Safe from any greenlet; never blocks. Raises ConnectionClosed when the session is
        closed (or closes now because its send buffer is full).
        """
        if self._state != OPEN:
            raise ConnectionClosed(self.close_code, self.close_reason)
        if not self._enqueue(frame_for(data)):
            raise ConnectionClosed(self.close_code, self.close_reason)
        self._writes.flush_if_due()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the peer gets `close_timeout` seconds to answer."""
        if self._state == OPEN:
            self._start_close(code, reason)

    def __repr__(self) -> str:
        state = ("open", "closing", "closed")[self._state]
        return f"<WebSocket {self.path} {self.remote_addr} {state}>"

    # -- writer path (runs in whichever greenlet sends, and in the hub) -------------------

    def _enqueue(self, frame: bytes) -> bool:
        """Queue a data frame; False when the session is closed or closes now (overflow)."""
        if self._state != OPEN:
            return False
        if len(self._out) + self._in_flight_count >= self._queue_limit:
            self._overflow()
            return False
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._writes.schedule(self)
        return True

    def _enqueue_control(self, frame: bytes) -> None:
        # Control frames (pong, ping, close) bypass the queue limit: they are tiny and the
        # protocol needs them.
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._writes.schedule(self)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._in_flight is None:  # else the write watcher is already draining
            self._write_pending()

    def _write_pending(self) -> None:
        while True:
            chunk = self._in_flight
            if chunk is None:
                out = self._out
                if not out:
                    if self._watcher is not None:
                        self._watcher.stop()
                    if self._drained is not None:
                        self._drained.set()
                    return
                self._out = []
                chunk = memoryview(out[0] if len(out) == 1 else b"".join(out))
                self._in_flight = chunk
                self._in_flight_count = len(out)
            try:
                sent = self._raw.send(chunk)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._write_failed(exc)
                return
            if sent == len(chunk):
                self._in_flight = None
                self._in_flight_count = 0
                continue
            self._in_flight = chunk[sent:]
            if self._watcher is None:
                self._watcher = self._loop.io(self._raw.fileno(), 2)  # 2: EV_WRITE
            if not self._watcher.active:
                self._watcher.start(self._write_pending)
            return

    def _write_failed(self, exc: OSError) -> None:
        log.debug("write to %s failed: %s", self.path, exc)
        self._drop_buffers()
        if self._state == OPEN:
            self._state = CLOSING
            self.close_code = 1006
        self._abort()

    def _drop_buffers(self) -> None:
        self._out = []
        self._in_flight = None
        self._in_flight_count = 0
        if self._watcher is not None:
            self._watcher.stop()
        if self._drained is not None:
            self._drained.set()

    def _overflow(self) -> None:
        """A slow consumer: close 1013 without waiting, free its buffer, leave the registry."""
        log.warning(
            "closing %s session from %s: %d messages not yet written (send_queue_size); "
            "the client reads too slowly",
            self.path,
            self.remote_addr,
            len(self._out) + self._in_flight_count,
        )
        stuck = self._in_flight is not None
        self._drop_buffers()
        self._state = CLOSING
        self.close_code, self.close_reason = 1013, "send queue overflow"
        self.app._registry.unregister(self)
        if not stuck:  # the socket is taking data: the close frame may fit at once
            with contextlib.suppress(OSError):
                self._raw.send(encode_frame(OP_CLOSE, close_payload(1013, "send queue overflow")))
        self._abort()

    def _abort(self) -> None:
        """Drop the TCP connection; the reader wakes with EOF and finishes the session."""
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)

    # -- closing ----------------------------------------------------------------------------

    def _start_close(self, code: int, reason: str) -> None:
        self._state = CLOSING
        self.close_code, self.close_reason = code, reason
        self._enqueue_control(encode_frame(OP_CLOSE, close_payload(code, reason)))
        timeout = self.app.config.close_timeout
        self._close_timer = self._loop.timer(timeout)
        self._close_timer.start(self._close_timed_out)

    def _close_timed_out(self) -> None:
        log.debug("%s: no close frame from the peer in time; dropping the connection", self.path)
        self._abort()

    def _wait_drained(self, timeout: float) -> None:
        if self._out or self._in_flight is not None:
            self._drained = Event()
            self._drained.wait(timeout)

    # -- heartbeats (hub timers, no greenlet) -----------------------------------------------

    def _start_heartbeat(self) -> None:
        interval = self.app.config.ping_interval
        if interval:
            self._ping_timer = self._loop.timer(interval, interval)
            self._ping_timer.start(self._send_ping)

    def _send_ping(self) -> None:
        if self._state != OPEN or self._ping_payload is not None:
            return
        self._ping_payload = int(time.monotonic() * 1000).to_bytes(8, "big")
        self._enqueue_control(encode_frame(OP_PING, self._ping_payload))
        timeout = self.app.config.ping_timeout
        if timeout:
            self._pong_timer = self._loop.timer(timeout)
            self._pong_timer.start(self._pong_timed_out)

    def _pong_timed_out(self) -> None:
        if self._ping_payload is not None and self._state == OPEN:
            log.info("%s: no pong from %s in time; closing", self.path, self.remote_addr)
            self._start_close(1011, "keepalive ping timeout")
            # The close frame was only queued (its flush is a later hub callback): write it
            # now, so the peer gets 1011 rather than a bare EOF, then drop the connection.
            self._write_pending()
            self._abort()

    def _got_pong(self, payload: bytes) -> None:
        if payload == self._ping_payload:
            self._ping_payload = None
            if self._pong_timer is not None:
                self._pong_timer.stop()

    # -- the reader: runs on the session's own greenlet ---------------------------------------

    def _start(self, initial: bytes = b"") -> None:
        """Run the session on a greenlet of its own. A bare greenlet whose parent is the hub,
        started by a loop callback, as gevent starts its own: gevent.Greenlet would also record
        its spawning stack and tree, about 1.2 KiB more per idle session."""
        reader = RawGreenlet(self._run_guarded, get_hub())
        self._loop.run_callback(reader.switch, initial)

    def _run_guarded(self, initial: bytes) -> None:
        try:
            self._run(initial)
        except GreenletExit:
            pass
        except BaseException:  # never let an error escape into the hub
            log.exception("WebSocket session on %s failed", self.path)

    def _run(self, initial: bytes = b"") -> None:
        parser = FrameParser(self.app.config.max_message_size)
        try:
            self._start_heartbeat()
            self._call(self._handlers.on_open)
            data = initial
            while True:
                if data:
                    try:
                        events = parser.feed(data)
                    except ProtocolError as exc:
                        self._fail(exc.code, exc.reason)
                        return
                    for event in events:
                        if self._handle(event):
                            return
                if self._state == CLOSED:
                    return
                try:
                    data = self._sock.recv(RECV_SIZE)
                except OSError:
                    data = b""
                if not data:  # EOF or reset: without a close frame that is 1006
                    if self._state == OPEN:
                        self.close_code = 1006
                    return
        finally:
            self._finish()

    def _handle(self, event: Message | Ping | Pong | Close) -> bool:
        """Act on one event; True when the session is over."""
        if type(event) is Message:
            if self._state == OPEN:
                self._call(self._handlers.on_message, event.data)
            return False
        if type(event) is Ping:
            if self._state == OPEN:  # RFC 6455 5.5.3: answer with the same payload
                self._enqueue_control(encode_frame(OP_PONG, event.payload))
            return False
        if type(event) is Pong:
            self._got_pong(event.payload)
            return False
        # A close frame (RFC 6455 5.5.1, 7.1.5).
        if self._state == OPEN:  # the peer started: echo its code, then close TCP
            self._state = CLOSING
            self.close_code = 1005 if event.code is None else event.code
            self.close_reason = event.reason
            reply = b"" if event.code is None else close_payload(event.code, "")
            self._enqueue_control(encode_frame(OP_CLOSE, reply))
            self._wait_drained(self.app.config.close_timeout)
        return True

    def _fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: send our close frame, then drop (RFC 6455 7.1.7)."""
        log.info("%s: closing %s with %d: %s", self.path, self.remote_addr, code, reason)
        if self._state == OPEN:
            self._state = CLOSING
            self.close_code, self.close_reason = code, reason
            self._enqueue_control(encode_frame(OP_CLOSE, close_payload(code, reason)))
        self._wait_drained(self.app.config.close_timeout)

    def _call(self, callback: Callable[..., Any] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(self, *args)
        except ConnectionClosed:
            pass  # the session closed under the callback: not an application error
        except Exception:
            log.exception(
                "%s callback for %s raised; closing the session with 1011",
                getattr(callback, "__name__", "WebSocket"),
                self.path,
            )
            if self._state == OPEN:
                self._start_close(1011, "internal error")

    def _finish(self) -> None:
        """The one place a session ends: timers off, buffers freed, registry left, on_close."""
        self._state = CLOSED
        for timer in (self._close_timer, self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.stop()
        self._drop_buffers()
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        if self.close_code is None:
            self.close_code = 1006
        self.app._session_ended(self)
        try:
            if self._handlers.on_close is not None:
                self._handlers.on_close(self)
        except Exception:
            log.exception("on_close callback for %s raised", self.path)
        finally:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self.close_code not in NORMAL_CLOSE_CODES:
            log.debug(
                "%s session from %s ended with %s", self.path, self.remote_addr, self.close_code
            )
