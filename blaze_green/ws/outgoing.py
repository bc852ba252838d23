"""The frames of an outgoing message: plain and compressed, each built at most once.

A broadcast is serialized once; `OutgoingMessage` then builds its plain frame for the sessions
without permessage-deflate and its compressed frame (RSV1 set) for those with it, each the
first time a session needs it, so one broadcast costs at most one frame of each kind (one per
window size a client asked for, in practice one) whatever the number of sessions. Payloads
shorter than the threshold go out plain to everyone (RSV1 clear): compressing a heartbeat saves
nothing (`bench/bench_compression.py`). Control frames never come here: they are never
compressed.
"""

from __future__ import annotations

import zlib
from typing import Final

from gevent import monkey

from .extensions import TAIL, Deflate
from .frames import encode_frame

__all__ = ["Compressors", "OutgoingMessage", "SharedCompressor"]

RSV1: Final = 0b100
# A real OS lock: a broadcast may compress in an OS thread while the hub compresses too.
_Lock = monkey.get_original("threading", "Lock")


class SharedCompressor:
    """One deflate compressor shared by every session that negotiated the same window.

    Each message ends with a full flush, which empties the compressor's history: the next
    message refers to nothing before it (server_no_context_takeover), so its bytes are valid for
    any session, and one broadcast is compressed once whatever the number of receivers."""

    __slots__ = ("_compressor", "_lock")

    def __init__(self, level: int = 6, window_bits: int = 15) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -window_bits)
        self._lock = _Lock()

    def compress(self, payload: bytes) -> bytes:
        with self._lock:
            data = self._compressor.compress(payload) + self._compressor.flush(zlib.Z_FULL_FLUSH)
        return data[:-4] if data.endswith(TAIL) else data


class Compressors:
    """The shared compressors of one runtime, one per window size, and the threshold."""

    __slots__ = ("level", "threshold", "_by_bits")

    def __init__(self, level: int = 6, threshold: int = 128) -> None:
        self.level = level
        self.threshold = threshold
        self._by_bits: dict[int, SharedCompressor] = {}

    def compressor(self, bits: int) -> SharedCompressor:
        found = self._by_bits.get(bits)
        if found is None:
            found = self._by_bits[bits] = SharedCompressor(self.level, bits)
        return found

    def deflated_frame(self, opcode: int, payload: bytes, bits: int) -> bytes:
        """A compressed frame (RSV1 set) of a message, with the compressor for `bits`."""
        return encode_frame(opcode, self.compressor(bits).compress(payload), rsv=RSV1)

    def frame(self, opcode: int, payload: bytes, deflate: Deflate | None) -> bytes:
        """One message's frame for one session (`ws.send`)."""
        if deflate is None or len(payload) < self.threshold:
            return encode_frame(opcode, payload)
        return self.deflated_frame(opcode, payload, deflate.server_max_window_bits)


class OutgoingMessage:
    """A serialized message and its frames, built lazily, each at most once."""

    __slots__ = ("opcode", "payload", "shared", "_compressors", "_plain", "_deflated")

    def __init__(self, opcode: int, payload: bytes, compressors: Compressors) -> None:
        self.opcode = opcode
        self.payload = payload
        # Under the threshold every session gets the plain frame, compressed or not.
        self.shared = len(payload) < compressors.threshold
        self._compressors = compressors
        self._plain: bytes | None = None
        self._deflated: dict[int, bytes] = {}

    @property
    def plain(self) -> bytes:
        frame = self._plain
        if frame is None:
            frame = self._plain = encode_frame(self.opcode, self.payload)
        return frame

    def frame_for(self, deflate: Deflate | None) -> bytes:
        """The frame for a session with these negotiated parameters (None: no compression)."""
        if deflate is None or self.shared:
            return self.plain
        bits = deflate.server_max_window_bits
        frame = self._deflated.get(bits)
        if frame is None:
            frame = self._compressors.deflated_frame(self.opcode, self.payload, bits)
            self._deflated[bits] = frame
        return frame
