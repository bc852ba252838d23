"""One WebSocket session: a reader on the session's own greenlet, one writer path in the hub.

Reading: after the `101` the session runs on a greenlet of its own (the HTTP handler that
accepted the connection has returned and is freed). It reads, feeds the sans-I/O parser and runs
the callbacks, so callbacks are plain blocking code and one session never runs two at once.

Writing: every frame (messages, pongs, pings, close) is appended to one per-session buffer.
A hub loop callback (`WriteScheduler`, no greenlet switch) writes everything pending in one
non-blocking send; what the socket does not take waits for an I/O watcher to report
writability. Frames never interleave, no greenlet ever blocks in a send, and two senders can
never wait on the same socket (gevent's ConcurrentObjectUseError). TCP_NODELAY stays on for
latency while bursts still batch.

Ending: every way a session ends goes through `_end`, which applies the rule of
`lifecycle.plan_for` (the rules are written out in `lifecycle.py`); `_finish` is the one place a
session ends, and `on_close` runs there exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from gevent import GreenletExit, get_hub, sleep
from gevent.event import Event
from gevent.ssl import SSLSocket, SSLWantReadError, SSLWantWriteError
from greenlet import greenlet as RawGreenlet

from ..config import Config
from ..errors import ConnectionClosed
from ..metrics import Metrics
from ..models import encode_message
from .extensions import Deflate
from .frames import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    Close,
    FrameParser,
    Message,
    Ping,
    Pong,
    ProtocolError,
    close_payload,
    encode_frame,
    is_valid_close_code,
)
from .lifecycle import NORMAL_CLOSE_CODES, CloseCode, Ending, Initiator, Plan, State, plan_for
from .outgoing import Compressors
from .writes import WriteScheduler

__all__ = ["WebSocket", "WebSocketHandlers", "SessionHost"]

log = logging.getLogger("blaze_green")

RECV_SIZE = 65536
_OPEN, _CLOSING, _CLOSED = State.OPEN, State.CLOSING, State.CLOSED
_NO_FRAMES: tuple[bytes, ...] = ()


class WebSocketHandlers(NamedTuple):
    """The callbacks of a WebSocket route; each optional."""

    on_open: Callable[[WebSocket], Any] | None = None
    on_message: Callable[[WebSocket, Any], Any] | None = None
    on_close: Callable[[WebSocket], Any] | None = None


class SessionHost(Protocol):
    """What a session needs from the runtime that runs it (blaze_green.runtime.Runtime)."""

    @property
    def config(self) -> Config: ...

    @property
    def writes(self) -> WriteScheduler: ...

    @property
    def metrics(self) -> Metrics | None: ...

    @property
    def compressors(self) -> Compressors: ...

    def session_left(self, ws: WebSocket) -> None:
        """`ws` is closing early (overflow): take it out of the registry now."""

    def session_ended(self, ws: WebSocket) -> None:
        """`ws` has finished: out of the registry, its connection slot freed."""


class WebSocket:
    """A WebSocket session, handed to `on_open`, `on_message` and `on_close`.

    `path` (the concrete path, e.g. `/chat/lobby`), `params` (the route's `:name` values),
    `environ`, `remote_addr`, `subprotocol`, `user_data` (settable; `before_open`'s value),
    `closed`, and once the session has ended: `close_code`, `close_reason`, `close_initiator`
    (`Initiator.SERVER` or `.CLIENT`; `None` when the connection just ended) and `ending`
    (the `lifecycle.Ending` that started it). `route` is the route's pattern (`/chat/:room`).
    """

    # Slots: about thirty attributes are read on the hottest paths (every delivery, every
    # write), and past thirty keys CPython stops sharing an instance dict's keys and its
    # attribute reads slow down (measured: fan-out at 5,000 sessions fell by a third). A
    # `__dict__` stays for what applications set on a session (`ws.name = ...`).
    __slots__ = (
        "environ",
        "path",
        "route",
        "deflate",
        "subprotocol",
        "user_data",
        "params",
        "close_code",
        "close_reason",
        "close_initiator",
        "ending",
        "_host",
        "_handlers",
        "_sock",
        "_fd",
        "_tls",
        "_tls_hold",
        "_watch_events",
        "_loop",
        "_state",
        "_out",
        "_in_flight",
        "_in_flight_frames",
        "_in_flight_count",
        "_flush_scheduled",
        "_watcher",
        "_drained",
        "_reader",
        "_read_watcher",
        "_wake_reader",
        "_close_timer",
        "_ping_timer",
        "_pong_timer",
        "_on_pong_timeout",
        "_ping_payload",
        "_queue_limit",
        "_bytes_limit",
        "_room",
        "_writes",
        "_metrics",
        "_sample_t0",
        "_chunk_sample_t0",
        "__dict__",
        "__weakref__",
    )

    def __init__(
        self,
        host: SessionHost,
        handlers: WebSocketHandlers,
        sock: socket.socket,
        environ: dict[str, Any],
        path: str,
        subprotocol: str | None = None,
        user_data: Any = None,
        params: dict[str, Any] | None = None,
        route: str | None = None,
        deflate: Deflate | None = None,
    ) -> None:
        self.environ = environ
        self.path = path
        self.route = route or path
        self.deflate = deflate  # permessage-deflate, when negotiated
        self.subprotocol = subprotocol
        self.user_data = user_data
        self.params = params or {}
        self.close_code: int | None = None  # the code this session ended with (1006: no close)
        self.close_reason = ""
        self.close_initiator: Initiator | None = None
        self.ending: Ending | None = None  # set when the session starts to end
        self._host = host
        self._handlers = handlers
        self._sock = sock
        self._fd = sock.fileno()  # hub-side writes: os.write on the non-blocking descriptor
        # A TLS socket is written through its SSL object (os.write would bypass TLS).
        self._tls = isinstance(sock, SSLSocket)
        self._watch_events = 2  # what the write watcher waits for: 2 EV_WRITE, 1 EV_READ
        # gevent's TLS server closes the SSL socket when the HTTP handler returns (it cannot be
        # dup()ed to escape that). A socket with a file object open only records a close()
        # until that file is closed too (as the standard library's does): ours is, in _finish.
        self._tls_hold = sock.makefile("rb", buffering=0) if self._tls else None
        self._loop = get_hub().loop
        self._state = _OPEN
        self._out: list[bytes] = []
        self._in_flight: memoryview | None = None
        # The frames joined into the in-flight chunk (a shared empty tuple when none is).
        self._in_flight_frames: Sequence[bytes] = _NO_FRAMES
        self._in_flight_count = 0  # how many (for the queue limit: an int is cheaper to read)
        self._flush_scheduled = False
        self._watcher: Any = None
        self._drained: Event | None = None
        self._reader: RawGreenlet | None = None
        self._read_watcher: Any = None  # the reader's own (plain sockets; see _recv)
        self._wake_reader: Callable[[], Any] | None = None
        self._close_timer: Any = None
        self._ping_timer: Any = None
        self._pong_timer: Any = None
        self._on_pong_timeout: Callable[[], None] | None = None
        self._ping_payload: bytes | None = None
        self._queue_limit = host.config.send_queue_size
        self._bytes_limit = host.config.send_queue_bytes
        # While a write is in flight (the socket did not take everything): send_queue_bytes
        # minus the bytes in flight and queued behind it. Kept only then, so the fan-out path
        # of a session whose socket drains tests `_in_flight is not None` and nothing else:
        # a per-session int touched on every delivery cost ~100 ns (a cache miss each).
        self._room = self._bytes_limit
        self._writes = host.writes
        self._metrics = host.metrics
        self._sample_t0 = 0.0  # a broadcast's time stamp, waiting for its frame to be written
        self._chunk_sample_t0 = 0.0  # the same, once its frame is in the chunk being written

    # -- public API -----------------------------------------------------------------------

    @property
    def remote_addr(self) -> str | None:
        """The peer's address (`REMOTE_ADDR`), or None when the server did not give one."""
        return self.environ.get("REMOTE_ADDR")

    @property
    def closed(self) -> bool:
        """True once the session is closing or closed: `send` no longer delivers."""
        return self._state is not _OPEN

    @property
    def state(self) -> State:
        """Where the session is in its lifecycle (`State`: OPEN, CLOSING, CLOSED)."""
        return self._state

    def send(self, data: Any) -> None:
        """Queue one message: str as text, bytes-like as binary, dict/list/Json/models as JSON.

        Safe from any greenlet; never blocks. Raises ConnectionClosed when the session is
        closed (or closes now because its send buffer is full).
        """
        if self._state is not _OPEN:
            raise ConnectionClosed(self.close_code, self.close_reason)
        opcode, payload = encode_message(data)
        if not self.queue_frame(self._host.compressors.frame(opcode, payload, self.deflate)):
            raise ConnectionClosed(self.close_code, self.close_reason)
        m = self._metrics
        if m is not None:
            m.messages_sent += 1
            m.payload_bytes_sent += len(payload)
        self._writes.flush_if_due()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the peer gets `close_timeout` seconds to answer."""
        if not is_valid_close_code(code):
            raise ValueError(
                f"close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"
            )
        self._end(Ending.LOCAL_CLOSE, code, reason)

    def __repr__(self) -> str:
        return f"<WebSocket {self.path} {self.remote_addr} {self._state.value}>"

    # -- used by the runtime ----------------------------------------------------------------

    def queue_frame(self, frame: bytes) -> bool:
        """Queue a pre-built data frame (a broadcast's, shared by every session); False when
        the session is closed or closes now (overflow). Never writes, never blocks."""
        if self._state is not _OPEN:
            return False
        if len(self._out) + self._in_flight_count >= self._queue_limit:
            if self._in_flight is None and self._out:
                # Queued in this hub turn but not yet tried (a burst of pongs from one read):
                # overflow only if the socket does not take them now.
                self._write_pending()
                return self.queue_frame(frame)  # once: a write that stops sets _in_flight
            self._overflow(len(frame))
            return False
        if self._in_flight is not None:
            # The socket is not taking data: what piles up behind it is bounded in bytes too.
            # (A frame larger than the bound still goes out to a session whose socket drains.)
            room = self._room - len(frame)
            if room < 0:
                self._overflow(len(frame))
                return False
            self._room = room
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._writes.schedule(self)
        return True

    def flush_writes(self) -> None:
        """The write scheduler's turn: write what is queued (non-blocking)."""
        self._flush_scheduled = False
        if self._in_flight is None:  # else the write watcher is already draining
            self._write_pending()

    def sample_latency(self, t0: float) -> None:
        """Measure how long the frame just queued waits until it is written (from `t0`)."""
        if not self._sample_t0:
            self._sample_t0 = t0

    def start(self, initial: bytes = b"") -> None:
        """Run the session on a greenlet of its own. A bare greenlet whose parent is the hub,
        started by a loop callback, as gevent starts its own: gevent.Greenlet would also record
        its spawning stack and tree, about 1.2 KiB more per idle session."""
        self._reader = RawGreenlet(self._run_guarded, get_hub())
        self._wake_reader = self._reader.switch  # one bound method, not one per wait
        self._loop.run_callback(self._reader.switch, initial)

    def abort(self) -> None:
        """Drop the connection now (shutdown past its deadline); the reader then finishes the
        session and `on_close` runs."""
        if self._state is _CLOSED:
            return
        self._drop_queue(keep_frame_in_flight=False)
        self._shutdown_socket()

    def kill(self) -> None:
        """End a session whose reader is stuck in a callback: GreenletExit is raised there,
        and the session finishes (on_close runs) as it unwinds."""
        reader = self._reader
        if reader is not None and self._state is not _CLOSED and not reader.dead:
            self._loop.run_callback(reader.throw, GreenletExit)

    # -- the one transition helper ----------------------------------------------------------

    def _end(self, ending: Ending, code: int | None = None, reason: str = "") -> Plan | None:
        """Apply the lifecycle rule for `ending` (see lifecycle.py); None if there is none."""
        plan = plan_for(self._state, ending)
        if plan is None:
            return None
        self._state = plan.state
        if plan.initiator is not None:
            self.close_initiator = plan.initiator
        if plan.takes_code:
            self.close_code, self.close_reason = code, reason
            self.ending = ending
        if plan.drop_queue:
            self._drop_queue(keep_frame_in_flight=ending is Ending.OVERFLOW)
        if plan.leave_registry:
            self._host.session_left(self)
        if plan.send_close:
            # An empty close frame answers one that had no code (reported as 1005).
            payload = b"" if code == CloseCode.NO_STATUS else close_payload(code, reason)
            self._queue_control(encode_frame(OP_CLOSE, payload))
        if plan.close_timer:
            self._close_timer = self._loop.timer(self._host.config.close_timeout)
            self._close_timer.start(self._close_timed_out)
        if plan.abort:
            self._write_pending()  # one attempt, without waiting: the close frame may fit
            self._shutdown_socket()
        return plan

    def _overflow(self, incoming: int) -> None:
        log.warning(
            "closing %s session from %s: %d messages (%d bytes) not yet written, %d more bytes "
            "refused (send_queue_size %d, send_queue_bytes %d); the client reads too slowly: "
            "closing with 1013",
            self.path,
            self.remote_addr,
            len(self._out) + self._in_flight_count,
            sum(map(len, self._out)) + (len(self._in_flight) if self._in_flight else 0),
            incoming,
            self._queue_limit,
            self._bytes_limit,
        )
        self._end(Ending.OVERFLOW, CloseCode.TRY_AGAIN_LATER, "send queue overflow")

    def _close_timed_out(self) -> None:
        log.debug("%s: the peer did not finish closing in time; dropping the connection", self.path)
        self._shutdown_socket()

    # -- writer path (runs in whichever greenlet sends, and in the hub) -------------------

    def _queue_control(self, frame: bytes) -> None:
        # The server's own control frames (ping, close) bypass the queue limits: there is at
        # most one of each pending, and the protocol needs them. Pongs are answers the peer
        # can ask for without bound, so they go through queue_frame and its limits.
        if self._state is _CLOSED:
            return
        if self._in_flight is not None:
            self._room -= len(frame)
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._writes.schedule(self)

    def _write_pending(self) -> None:
        if self._in_flight is not None and not self._write_in_flight():
            return
        out = self._out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            sent, events = self._write(data)
            if not self._wrote_queue(data, sent, events):
                return
        self._all_written()

    def take_writes(self, fds: list[int], datas: list[bytes]) -> bool:
        """A shared write round's first step, on the hub (see WriteScheduler): append this
        session's descriptor and the bytes it should get now, and return True; or return
        False when there is nothing for another thread to write (nothing queued; a write in
        flight, which its watcher goes on with; TLS, written here and now: the SSL object
        and gevent's socket stay on the hub)."""
        self._flush_scheduled = False
        out = self._out
        if self._in_flight is not None or not out or self._tls:
            if self._in_flight is None:
                self._write_pending()
            return False
        fds.append(self._fd)
        datas.append(out[0] if len(out) == 1 else b"".join(out))
        return True

    def written(self, data: bytes, result: int | OSError) -> None:
        """A shared write round's last step, on the hub: what `os.write(fd, data)` returned
        or raised in whichever thread wrote it."""
        if isinstance(result, OSError):
            if not isinstance(result, (BlockingIOError, InterruptedError)):
                self._write_failed(result)
                return
            result = 0
        m = self._metrics
        if m is not None:
            m.bytes_written += result
        if self._wrote_queue(data, result, 2):
            self._all_written()

    def _wrote_queue(self, data: bytes, sent: int, events: int) -> bool:
        """Settle a write of the whole queue (`data`, joined from `_out`): True when all of it
        went. The common turn allocates nothing that outlives it: a new list per session per
        write round kept the collector's oldest generation growing
        (tests/test_faults.py::test_heartbeats_leave_the_collector_nothing_to_age)."""
        if sent < 0:
            return False
        out = self._out
        if sent < len(data):
            # The socket is full: the unsent rest is written when it drains.
            self._out = []
            self._in_flight_frames = out
            self._in_flight_count = len(out)
            self._in_flight = memoryview(data)[sent:]
            self._room = self._bytes_limit - (len(data) - sent)
            if self._sample_t0:  # the sampled frame is in this chunk
                self._chunk_sample_t0, self._sample_t0 = self._sample_t0, 0.0
            self._watch_writable(events)
            return False
        out.clear()
        if self._sample_t0:
            self._observe_latency(self._sample_t0)
            self._sample_t0 = 0.0
        return True

    def _all_written(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self._drained is not None:
            self._drained.set()

    def _write_in_flight(self) -> bool:
        """Write on with the chunk a full socket stopped; True once all of it is written."""
        chunk = self._in_flight
        assert chunk is not None
        sent, events = self._write(chunk)
        if sent < 0:
            return False
        self._room += sent
        if sent < len(chunk):
            # A TLS write that could not finish left sent == 0, so OpenSSL gets the same
            # buffer again, as it requires.
            self._in_flight = chunk[sent:]
            self._watch_writable(events)
            return False
        self._in_flight = None
        self._in_flight_frames = _NO_FRAMES
        self._in_flight_count = 0
        if self._chunk_sample_t0:
            self._observe_latency(self._chunk_sample_t0)
            self._chunk_sample_t0 = 0.0
        return True

    def _write(self, data: bytes | memoryview) -> tuple[int, int]:
        """One non-blocking write: (bytes sent, the I/O event to wait for if not all of them);
        sent is -1 when the connection failed (the session is then ending)."""
        try:
            if self._tls:
                sent, events = self._tls_write(data)
            else:
                sent, events = os.write(self._fd, data), 2
        except (BlockingIOError, InterruptedError):
            sent, events = 0, 2
        except (OSError, ValueError) as exc:  # ValueError: the SSL socket was shut down
            self._write_failed(exc)
            return -1, 2
        m = self._metrics
        if m is not None:
            m.bytes_written += sent
        return sent, events

    def _write_failed(self, exc: Exception) -> None:
        log.debug("write to %s failed: %s", self.path, exc)
        self._end(Ending.WRITE_ERROR, CloseCode.ABNORMAL)

    def _observe_latency(self, t0: float) -> None:
        m = self._metrics
        if m is not None:
            m.broadcast_latency.observe(time.monotonic() - t0)

    def _watch_writable(self, events: int) -> None:
        """Go on writing when the socket can take more (`events`: 2 writable, 1 readable)."""
        watcher = self._watcher
        if watcher is not None and self._watch_events != events:
            watcher.close()
            watcher = self._watcher = None
        if watcher is None:
            watcher = self._watcher = self._loop.io(self._fd, events)
            self._watch_events = events
        if not watcher.active:
            watcher.start(self._write_pending)

    def _tls_write(self, chunk: bytes | memoryview) -> tuple[int, int]:
        """One non-blocking write through the SSL object: (bytes sent, the I/O event to wait
        for when it could not finish). OpenSSL writes all of `chunk` or nothing it reports
        (without partial-write mode the bytes it did put on the wire are remembered, and the
        retry with the same buffer returns the full length)."""
        sock: Any = self._sock  # a gevent.ssl.SSLSocket
        timeout = sock.gettimeout()
        # The reader greenlet is parked in recv; a zero timeout for this one call (restored
        # before any switch) makes the SSL write raise instead of waiting in the hub.
        sock.settimeout(0.0)
        try:
            # write, not send: after shutdown, send would fall back to the plain socket.
            return sock.write(chunk), 2
        except SSLWantWriteError:
            return 0, 2
        except SSLWantReadError:
            # Only during a renegotiation (which OpenSSL 3 refuses from clients by default,
            # and TLS 1.3 does not have): retry once the socket is readable.
            return 0, 1
        finally:
            sock.settimeout(timeout)

    def _drop_queue(self, keep_frame_in_flight: bool) -> None:
        """Free what waits to be written; optionally keep the unsent rest of the one frame
        being written (a frame cut in the middle would break the stream for good)."""
        rest = self._in_flight
        self._out = []
        self._in_flight = None
        if keep_frame_in_flight and rest is not None:
            # TLS: OpenSSL must be handed the same buffer again, so the whole chunk stays.
            if not self._tls:
                rest = _rest_of_current_frame(rest, self._in_flight_frames)
            if rest is not None:
                self._in_flight = rest
                self._in_flight_frames = (b"",)
                self._in_flight_count = 1  # counts as one frame in the queue
                self._room = self._bytes_limit - len(rest)
                return  # the watcher goes on writing it
        self._in_flight_frames = _NO_FRAMES
        self._in_flight_count = 0
        self._room = self._bytes_limit
        if self._watcher is not None:
            self._watcher.stop()
        if self._drained is not None:
            self._drained.set()

    def _shutdown_socket(self) -> None:
        """Drop the TCP connection; the reader wakes with EOF and finishes the session."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _wait_written(self) -> None:
        if self._out or self._in_flight is not None:
            self._drained = Event()
            self._drained.wait(self._host.config.close_timeout)

    # -- heartbeats (hub timers, no greenlet) -----------------------------------------------

    def _start_heartbeat(self) -> None:
        interval = self._host.config.ping_interval
        if interval:
            self._ping_timer = self._loop.timer(interval, interval)
            self._ping_timer.start(self._send_ping)

    def _send_ping(self) -> None:
        if self._state is not _OPEN or self._ping_payload is not None:
            return
        self._ping_payload = int(time.monotonic() * 1000).to_bytes(8, "big")
        self._queue_control(encode_frame(OP_PING, self._ping_payload))
        timeout = self._host.config.ping_timeout
        if timeout:
            # One timer per session, re-armed for each ping (a repeating timer: gevent re-arms
            # those with again(); a fired one-shot timer restarted would fire at once).
            timer = self._pong_timer
            if timer is None:
                timer = self._pong_timer = self._loop.timer(timeout, timeout)
                self._on_pong_timeout = self._pong_timed_out
            timer.again(self._on_pong_timeout)

    def _pong_timed_out(self) -> None:
        if self._pong_timer is not None:
            self._pong_timer.stop()
        if self._ping_payload is not None and self._state is _OPEN:
            log.info("%s: no pong from %s in time; closing", self.path, self.remote_addr)
            self._end(Ending.PING_TIMEOUT, CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    def _got_pong(self, payload: bytes) -> None:
        if payload == self._ping_payload:
            self._ping_payload = None
            if self._pong_timer is not None:
                self._pong_timer.stop()

    # -- the reader: runs on the session's own greenlet ---------------------------------------

    def _run_guarded(self, initial: bytes) -> None:
        try:
            self._run(initial)
        except GreenletExit:
            pass
        except BaseException:  # never let an error escape into the hub
            log.exception("WebSocket session on %s failed", self.path)

    def _run(self, initial: bytes = b"") -> None:
        config = self._host.config
        parser = FrameParser(
            config.max_message_size,
            deflate=self.deflate is not None,
            max_fragments=config.max_fragments,
        )
        try:
            self._start_heartbeat()
            self._call(self._handlers.on_open)
            data = initial
            while True:
                if data:
                    if self._consume(parser, data):
                        return
                    if len(data) == RECV_SIZE:
                        # recv returns at once while data is waiting: a peer that keeps the
                        # socket full (a ping flood) would never let the hub run (timers,
                        # other sessions, HTTP). Yield once per full read.
                        sleep(0)
                data = self._recv()
                if self._metrics is not None:
                    self._metrics.bytes_received += len(data)
                if not data:  # EOF or reset: without a close frame that is 1006
                    self._end(Ending.EOF, CloseCode.ABNORMAL)
                    return
        finally:
            self._finish()

    def _consume(self, parser: FrameParser, data: bytes) -> bool:
        """Parse `data` and handle its events; True when the session is over. (A method of
        its own so that the events die with its frame, not held while the reader waits.)"""
        try:
            events = parser.feed(data)
        except ProtocolError as exc:
            # Messages that arrived before the violation are delivered first.
            if not any(self._handle(event) for event in exc.events):
                self._protocol_error(exc)
            return True
        for event in events:  # noqa: SIM110 (a loop, not any(): no generator per read)
            if self._handle(event):
                return True
        return False

    def _recv(self) -> bytes:
        """The next bytes from the peer; b"" at EOF or on a connection error.

        A plain socket waits on the session's own read watcher, woken by its reader's switch:
        gevent's recv allocates a Waiter, its bound switch and an argument tuple for every
        wait, which live as long as the session is idle, so each heartbeat round aged 45,000
        objects into the collector's oldest generation at 15,000 sessions and set off a full
        collection (200-285 ms) every few seconds
        (tests/test_faults.py::test_heartbeats_leave_the_collector_nothing_to_age)."""
        if self._tls:
            try:
                # Bytes already decrypted in the SSL object come first, without waiting for
                # the descriptor (gevent's SSL recv reads them before waiting).
                return self._sock.recv(RECV_SIZE)
            except (OSError, ValueError):  # ValueError: an SSL socket that was shut down
                return b""
        fd = self._fd
        while True:
            try:
                return os.read(fd, RECV_SIZE)
            except BlockingIOError:
                pass
            except OSError:
                return b""
            watcher = self._read_watcher
            if watcher is None:
                watcher = self._read_watcher = self._loop.io(fd, 1)
            watcher.start(self._wake_reader)
            try:
                get_hub().switch()
            finally:
                watcher.stop()

    def _handle(self, event: Message | Ping | Pong | Close) -> bool:
        """Act on one event; True when the session is over."""
        kind = type(event)
        if kind is Message:
            if self._state is _OPEN:
                data = event.data  # type: ignore[union-attr]
                m = self._metrics
                if m is not None:
                    m.messages_received += 1
                    # Text arrives decoded; ASCII (O(1) to tell) has as many bytes as chars.
                    m.payload_bytes_received += (
                        len(data)
                        if type(data) is bytes or data.isascii()
                        else len(data.encode("utf-8"))  # type: ignore[union-attr]  # str here
                    )
                self._call(self._handlers.on_message, data)
            return False
        if kind is Ping:
            # RFC 6455 5.5.3: answer with the same payload. A pong counts against the send
            # queue like a message: a client that floods pings and never reads is a slow
            # consumer (1013), not a reason to buffer pongs without bound.
            if self._state is _OPEN:
                self.queue_frame(encode_frame(OP_PONG, event.payload))  # type: ignore[union-attr]
            return False
        if kind is Pong:
            self._got_pong(event.payload)  # type: ignore[union-attr]
            return False
        assert isinstance(event, Close)  # RFC 6455 5.5.1, 7.1.5
        code = CloseCode.NO_STATUS if event.code is None else event.code
        plan = self._end(Ending.PEER_CLOSE, code, event.reason)
        if plan is not None and plan.wait_written:
            self._wait_written()
        return True

    def _protocol_error(self, exc: ProtocolError) -> None:
        """The peer broke the protocol: send our close frame, then drop (RFC 6455 7.1.7)."""
        log.info("%s: closing %s with %d: %s", self.path, self.remote_addr, exc.code, exc.reason)
        plan = self._end(Ending.PROTOCOL_ERROR, exc.code, exc.reason)
        if plan is not None and plan.wait_written:
            self._wait_written()

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
            self._end(Ending.LOCAL_CLOSE, CloseCode.INTERNAL_ERROR, "internal error")

    def _finish(self) -> None:
        """The one place a session ends: timers off, buffers freed, registry left, on_close."""
        self._state = _CLOSED
        for timer in (self._close_timer, self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.stop()
        self._drop_queue(keep_frame_in_flight=False)
        for watcher in (self._watcher, self._read_watcher):
            if watcher is not None:
                watcher.close()
        self._watcher = self._read_watcher = None
        if self.close_code is None:
            self.close_code = CloseCode.ABNORMAL
        self._host.session_ended(self)
        try:
            if self._handlers.on_close is not None:
                self._handlers.on_close(self)
        except Exception:
            log.exception("on_close callback for %s raised", self.path)
        finally:
            self._fd = -1  # nothing may write to a descriptor number the kernel may reuse
            with contextlib.suppress(OSError):
                self._sock.close()
            if self._tls_hold is not None:
                with contextlib.suppress(OSError):
                    self._tls_hold.close()  # now the TLS socket closes for real
        if self.close_code not in NORMAL_CLOSE_CODES:
            log.debug(
                "%s session from %s ended with %s", self.path, self.remote_addr, self.close_code
            )


def _rest_of_current_frame(rest: memoryview, frames: Sequence[bytes]) -> memoryview | None:
    """The unsent rest of the frame being written, given the unsent rest of the chunk joined
    from `frames`; None when the chunk stopped on a frame boundary."""
    sent = sum(len(f) for f in frames) - len(rest)
    end = 0
    for frame in frames:
        end += len(frame)
        if end > sent:
            return None if end - len(frame) == sent else rest[: end - sent]
    return None
