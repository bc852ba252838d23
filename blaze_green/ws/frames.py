"""Sans-I/O RFC 6455 frame codec: bytes in, events out; no sockets, no logging.

FrameParser.feed() walks the input with an offset, reading header bytes by direct indexing; a
payload that spans feeds is kept as a list of zero-copy views and joined once when complete.
Every check decidable from a header (masking, RSV bits, opcode, control-frame rules, fragment
order, max_message_size) fails before any payload byte is awaited. Unmasking runs at C speed:
a big-int XOR for small payloads, a bytes.translate per mask-byte lane for large ones. Text is
validated with an incremental UTF-8 decoder, so bad bytes fail at the fragment carrying them.
"""

from __future__ import annotations

import codecs
import struct
import zlib
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from .extensions import MessageInflater

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Close",
    "Event",
    "FrameParser",
    "Message",
    "Ping",
    "Pong",
    "ProtocolError",
    "apply_mask",
    "binary_frame",
    "close_payload",
    "encode_frame",
    "is_valid_close_code",
    "text_frame",
]

OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

BytesLike: TypeAlias = bytes | bytearray | memoryview


class ProtocolError(Exception):
    """The peer broke RFC 6455; close the connection with .code (1002, 1007 or 1009).

    ``events`` holds the events that FrameParser.feed() had already decoded from the same call
    before it hit the error (valid messages that preceded the bad frame); it is empty otherwise.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.events: list[Event] = []

    def __str__(self) -> str:
        return f"{self.reason} (close code {self.code})"


# Events. Plain __slots__ classes: cheaper to build than frozen dataclasses, which matters when
# one feed() yields thousands of small messages.


class Message:
    """One complete data message: str for a text message, bytes for a binary one."""

    __slots__ = ("data",)

    def __init__(self, data: str | bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return type(other) is Message and other.data == self.data

    def __hash__(self) -> int:
        return hash((Message, self.data))

    def __repr__(self) -> str:
        data = self.data
        shown = repr(data) if len(data) <= 60 else f"{data[:50]!r}... ({len(data)} long)"
        return f"Message({shown})"


class Ping:
    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return type(other) is Ping and other.payload == self.payload

    def __hash__(self) -> int:
        return hash((Ping, self.payload))

    def __repr__(self) -> str:
        return f"Ping({self.payload!r})"


class Pong:
    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return type(other) is Pong and other.payload == self.payload

    def __hash__(self) -> int:
        return hash((Pong, self.payload))

    def __repr__(self) -> str:
        return f"Pong({self.payload!r})"


class Close:
    """A close frame. ``code`` is None when the payload was empty (to be reported as 1005)."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return type(other) is Close and other.code == self.code and other.reason == self.reason

    def __hash__(self) -> int:
        return hash((Close, self.code, self.reason))

    def __repr__(self) -> str:
        return f"Close({self.code!r}, {self.reason!r})"


Event: TypeAlias = Message | Ping | Pong | Close


# Masking.

_from_bytes = int.from_bytes
# XOR tables for bytes.translate: _XOR_TABLES[k][b] == b ^ k (256 tables of 256 bytes).
_XOR_TABLES: Final = [bytes(b ^ k for b in range(256)) for k in range(256)]
# Up to this size one big-int XOR is cheapest; above it four strided bytes.translate passes win
# (measured: even at 512 B, 1.3x faster at 2 KiB, 2x at 1 MiB, where the int conversions cost).
_INT_MASK_MAX: Final = 512

_c_apply_mask: Callable[[BytesLike, bytes | bytearray], bytes] | None

try:
    # Optional C speedup (pip install blaze-green[speedups]): websockets' apply_mask unmasks at
    # memory speed (~13 GB/s here, against ~0.7 GB/s for the translate passes below).
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pragma: no cover - depends on the environment
    _c_apply_mask = None


def _unmask_large(data: BytesLike, mask: bytes) -> bytes | bytearray:
    """Unmask a payload over _INT_MASK_MAX bytes: bytes with the C helper, else a bytearray."""
    if _c_apply_mask is not None:
        return _c_apply_mask(data, mask)
    buf = bytearray(data)
    _unmask_inplace(buf, mask)
    return buf


def _unmask_inplace(buf: bytearray, mask: bytes) -> None:
    # Byte i is XORed with mask[i % 4]: each of the 4 strided lanes is a single-key translate.
    tables = _XOR_TABLES
    buf[0::4] = buf[0::4].translate(tables[mask[0]])
    buf[1::4] = buf[1::4].translate(tables[mask[1]])
    buf[2::4] = buf[2::4].translate(tables[mask[2]])
    buf[3::4] = buf[3::4].translate(tables[mask[3]])


def apply_mask(data: BytesLike, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 5.3); masking == unmasking."""
    if len(mask) != 4:
        raise ValueError("mask must be 4 bytes")
    n = len(data) if type(data) is not memoryview else data.nbytes
    if n <= _INT_MASK_MAX:
        if not n:
            return b""
        mask = bytes(mask)
        key = _from_bytes(mask * (n >> 2) + mask[: n & 3], "little")
        return (_from_bytes(data, "little") ^ key).to_bytes(n, "little")
    return bytes(_unmask_large(data, mask))


# Encoding.

_pack_16: Final = struct.Struct("!BBH").pack
_pack_64: Final = struct.Struct("!BBQ").pack


def _header(b0: int, mask_bit: int, n: int) -> bytes:
    # RFC 6455 5.2: 7-bit length, or 126 + 16-bit, or 127 + 64-bit (network byte order).
    if n < 126:
        return bytes((b0, mask_bit | n))
    if n < 65536:
        return _pack_16(b0, mask_bit | 126, n)
    return _pack_64(b0, mask_bit | 127, n)


def encode_frame(
    opcode: int,
    payload: BytesLike = b"",
    fin: bool = True,
    mask: bytes | None = None,
    rsv: int = 0,
) -> bytes:
    """Build one frame. With ``mask`` (4 bytes) it is a masked, client-to-server frame.

    ``rsv`` is the 3-bit RSV1-RSV3 field (RSV1 = 0b100). Nothing else is validated, so tests can
    build frames that break the protocol (bad opcodes, fragmented or long control frames).
    """
    if not 0 <= opcode <= 0xF:
        raise ValueError(f"opcode out of range: {opcode}")
    if not 0 <= rsv <= 7:
        raise ValueError(f"rsv out of range: {rsv}")
    if type(payload) is memoryview:
        payload = payload.cast("B")
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    if mask is None:
        return _header(b0, 0, len(payload)) + payload
    if len(mask) != 4:
        raise ValueError("mask must be 4 bytes")
    return _header(b0, 0x80, len(payload)) + bytes(mask) + apply_mask(payload, mask)


def text_frame(text: str) -> bytes:
    """An unmasked (server-to-client) single-frame text message."""
    data = text.encode("utf-8")
    return _header(0x81, 0, len(data)) + data


def binary_frame(data: BytesLike) -> bytes:
    """An unmasked (server-to-client) single-frame binary message."""
    if type(data) is memoryview:
        data = data.cast("B")
    return _header(0x82, 0, len(data)) + data


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 7.4.1 and the IANA registry)."""
    # 1004 is reserved; 1005, 1006 and 1015 must never be sent; 1016-2999 are unassigned
    # protocol codes; 3000-3999 are registered and 4000-4999 private-use application codes.
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_payload(code: int | None = 1000, reason: str = "") -> bytes:
    """Payload of a close frame: 2-byte code + UTF-8 reason, at most 125 bytes in total.

    Returns b"" when ``code`` is None (``reason`` is then ignored: a reason needs a code). A long
    reason is cut on a character boundary so it stays valid UTF-8. The code is not checked
    against is_valid_close_code(), so tests can build bad close frames.
    """
    if code is None:
        return b""
    encoded = reason.encode("utf-8")
    if len(encoded) > 123:
        # RFC 6455 5.5: control payloads are <= 125 bytes. Back up over continuation bytes
        # (10xxxxxx) so the cut never splits a code point.
        end = 123
        while encoded[end] & 0xC0 == 0x80:
            end -= 1
        encoded = encoded[:end]
    return code.to_bytes(2, "big") + encoded


# Parsing.

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class FrameParser:
    """Incremental parser of one direction of a WebSocket connection.

    ``feed(data)`` returns the events completed by ``data``, in order. It raises ProtocolError
    on the first violation; the parser is then dead and every later feed() raises a
    ProtocolError with the same code and reason again. After a Close event the rest of the
    input is ignored and later feed() calls return [].

    With ``deflate`` (permessage-deflate negotiated, RFC 7692) RSV1 on the first frame of a data
    message means the message is compressed; it is inflated as it arrives, never past
    ``max_message_size`` bytes of output. ``inflate_context``: the peer compresses with context
    takeover (one inflater for every message); off, each message is inflated on its own.

    ``max_fragments``: a data message of more frames than this fails with 1009, decided from
    the header of the frame over the count (empty continuation frames count too).

    A text frame, and a compressed frame, is processed as its payload arrives (unmasked,
    inflated, UTF-8 checked piece by piece), so invalid data fails in the feed that carries it
    and a compression bomb stops at the limit; other frames are joined once when complete.
    """

    __slots__ = (
        "_max",
        "_max_frames",
        "_mask_bit",
        "_rsv_allowed",
        "_context",
        "_tail",
        "_need",
        "_pieces",
        "_f_b0",
        "_f_mask",
        "_f_stream",
        "_f_offset",
        "_msg_opcode",
        "_msg_size",
        "_msg_frames",
        "_msg_parts",
        "_decoder",
        "_inflater",
        "_done",
        "_error",
    )

    def __init__(
        self,
        max_message_size: int | None = 1 << 20,
        expect_masked: bool = True,
        deflate: bool = False,
        inflate_context: bool = False,
        max_fragments: int | None = None,
    ) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be >= 0 or None")
        if max_fragments is not None and max_fragments < 1:
            raise ValueError("max_fragments must be >= 1 or None")
        self._max = max_message_size
        self._max_frames = max_fragments
        self._mask_bit = 0x80 if expect_masked else 0
        self._rsv_allowed = 0x40 if deflate else 0  # RSV1: "this message is compressed"
        # One inflater for every message when the peer keeps its compression context.
        self._context: Any = zlib.decompressobj(-15) if deflate and inflate_context else None
        self._tail = b""  # start of a header that has not fully arrived yet
        self._need = 0  # payload bytes the current frame still misses (0: expecting a header)
        self._pieces: list[bytes | memoryview] = []  # payload of the current frame so far
        self._f_b0 = 0  # first header byte (FIN + opcode) of the frame whose payload we await
        self._f_mask: bytes | None = None
        self._f_stream = False  # that frame's payload is processed as it arrives
        self._f_offset = 0  # payload bytes of that frame processed so far (for the mask)
        self._msg_opcode = 0  # OP_TEXT / OP_BINARY while a message spans frames or feeds
        self._msg_size = 0  # payload bytes of that message on the wire so far
        self._msg_frames = 0  # frames of that message so far (for max_fragments)
        self._msg_parts: list[Any] = []  # str pieces for text, bytes for binary
        self._decoder = _Utf8Decoder()
        self._inflater: MessageInflater | None = None  # the current compressed message's
        self._done = False  # a Close event was returned or an error raised
        self._error: ProtocolError | None = None

    def feed(self, data: BytesLike) -> list[Event]:
        """Consume ``data`` (any split of the stream) and return the events it completed.

        Raises ProtocolError (with ``.events`` = events completed earlier in this call).
        """
        if self._done:
            if self._error is not None:
                raise ProtocolError(self._error.code, self._error.reason)
            return []
        if type(data) is not bytes:
            # Own a copy: the caller may reuse its buffer and we may keep views into it.
            data = bytes(data)
        events: list[Event] = []
        try:
            need = self._need
            if need:
                n = len(data)
                if self._f_stream:
                    if n < need:
                        if n:
                            self._need = need - n
                            self._stream(data, False)
                        return events
                    self._need = 0
                    self._stream(memoryview(data)[:need], True)
                    if self._f_b0 & 0x80:
                        self._end_message(events)
                    pos = need
                else:
                    if n < need:
                        if n:
                            self._pieces.append(data)
                            self._need = need - n
                        return events
                    pieces = self._pieces
                    pieces.append(memoryview(data)[:need])
                    self._pieces = []
                    self._need = 0
                    mask = self._f_mask
                    if mask is None:
                        payload: bytes | bytearray = b"".join(pieces)
                    elif _c_apply_mask is not None:
                        payload = _c_apply_mask(b"".join(pieces), mask)
                    else:
                        # One copy joins the pieces; unmasking then happens in place.
                        payload = bytearray().join(pieces)
                        _unmask_inplace(payload, mask)
                        payload = bytes(payload)  # events carry bytes
                    self._frame(self._f_b0, payload, events)
                    if self._done:
                        return events
                    pos = need
            else:
                tail = self._tail
                if tail:
                    data = tail + data
                    self._tail = b""
                pos = 0
            self._parse(data, pos, events)
        except ProtocolError as exc:
            self._done = True
            self._error = exc
            exc.events = events
            raise
        return events

    def _parse(self, data: bytes, pos: int, events: list[Event]) -> None:
        n = len(data)
        mask_bit = self._mask_bit
        max_size = self._max
        append = events.append
        from_bytes = _from_bytes
        while True:
            avail = n - pos
            if avail < 2:
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            opcode = b0 & 0x0F
            # RFC 6455 5.2: RSV1-3 must be 0 unless an extension gives them a meaning;
            # RFC 7692 6: permessage-deflate gives RSV1 one, on the first frame of a data
            # message only.
            rsv = b0 & 0x70
            if rsv:
                if rsv != self._rsv_allowed:
                    raise ProtocolError(1002, "reserved bits set")
                if opcode == OP_CONT:
                    raise ProtocolError(1002, "RSV1 set on a continuation frame")
                if opcode & 0x8:
                    raise ProtocolError(1002, "RSV1 set on a control frame")
            # RFC 6455 5.1: a server must fail unmasked frames, a client masked ones.
            if b1 & 0x80 != mask_bit:
                raise ProtocolError(1002, "unmasked frame" if mask_bit else "masked frame")
            length = b1 & 0x7F
            if opcode & 0x8:
                # RFC 6455 5.2: opcodes 0xB-0xF are reserved.
                if opcode > OP_PONG:
                    raise ProtocolError(1002, f"reserved opcode {opcode:#x}")
                # RFC 6455 5.5: control frames must not be fragmented ...
                if not b0 & 0x80:
                    raise ProtocolError(1002, "fragmented control frame")
                # ... and carry at most 125 bytes (so the 7-bit length suffices).
                if length > 125:
                    raise ProtocolError(1002, "control frame payload over 125 bytes")
            elif opcode == OP_CONT:
                # RFC 6455 5.4: a continuation frame needs a fragmented message in progress.
                if not self._msg_opcode:
                    raise ProtocolError(1002, "continuation frame without a message")
            elif opcode > OP_BINARY:
                # RFC 6455 5.2: opcodes 0x3-0x7 are reserved.
                raise ProtocolError(1002, f"reserved opcode {opcode:#x}")
            elif self._msg_opcode:
                # RFC 6455 5.4: fragments of one message must not interleave with another.
                raise ProtocolError(1002, "new data frame inside a fragmented message")
            hlen = 2
            if length > 125:
                if length == 126:
                    if avail < 4:
                        break
                    length = data[pos + 2] << 8 | data[pos + 3]
                    hlen = 4
                else:
                    if avail < 10:
                        break
                    length = from_bytes(data[pos + 2 : pos + 10], "big")
                    # RFC 6455 5.2: the most significant bit of a 64-bit length must be 0.
                    if length >> 63:
                        raise ProtocolError(1002, "64-bit payload length has its top bit set")
                    hlen = 10
            # RFC 6455 10.4 / 7.4.1 (1009): refuse an oversized message from its header alone,
            # counting the fragments already received, before buffering any of its payload.
            # A compressed message is held to its inflated size as it inflates; its wire size
            # gets the slack of deflate's worst case (stored blocks) on top.
            if opcode < 8 and max_size is not None:
                total = self._msg_size + length if opcode == OP_CONT else length
                compressed = rsv or (opcode == OP_CONT and self._inflater is not None)
                if total > (max_size + (max_size >> 6) + 1024 if compressed else max_size):
                    raise ProtocolError(1009, f"message of {total} bytes exceeds {max_size}")
            start = pos + hlen
            if mask_bit:
                if avail < hlen + 4:
                    break
                mask: bytes | None = data[start : start + 4]
                start += 4
            else:
                mask = None
            end = start + length
            if opcode < 8 and b0 != 0x81 and b0 != 0x82 or end > n and opcode < 8:
                # Not a whole single-frame message: it is or joins a message spanning frames.
                if opcode:
                    self._start_message(opcode, rsv, length)
                else:
                    self._msg_size += length
                    # Frames are counted, empty ones too: a message of endless empty
                    # continuation frames is refused like one of too many bytes (1009).
                    frames = self._msg_frames = self._msg_frames + 1
                    if self._max_frames is not None and frames > self._max_frames:
                        raise ProtocolError(
                            1009, f"message of more than {self._max_frames} fragments"
                        )
            if end > n:
                # The payload spans feeds: text and compressed payloads are processed as they
                # arrive; others are kept as zero-copy views and joined once when complete.
                self._f_b0 = b0
                self._f_mask = mask
                self._need = end - n
                if opcode < 8 and (self._msg_opcode == OP_TEXT or self._inflater is not None):
                    self._f_stream = True
                    self._f_offset = 0
                    self._pieces = []
                    if start < n:
                        self._stream(memoryview(data)[start:], False)
                else:
                    self._f_stream = False
                    self._pieces = [memoryview(data)[start:]] if start < n else []
                return
            pos = end
            if mask is None or not length:
                payload: bytes | bytearray = data[start:end]
            elif length <= _INT_MASK_MAX:
                # Inlined apply_mask: small frames dominate message counts.
                key = from_bytes(mask * (length >> 2) + mask[: length & 3], "little")
                payload = (from_bytes(data[start:end], "little") ^ key).to_bytes(length, "little")
            else:
                payload = _unmask_large(memoryview(data)[start:end], mask)
                if type(payload) is bytearray and not self._is_text(b0):
                    payload = bytes(payload)
            # Fast path: a whole message in one frame (RSV bits are known to be 0 here).
            if b0 == 0x82:
                append(Message(payload))  # type: ignore[arg-type]  # bytes: not text
            elif b0 == 0x81:
                try:
                    append(Message(payload.decode("utf-8")))
                except UnicodeDecodeError:
                    # RFC 6455 8.1: a text message must be valid UTF-8.
                    raise ProtocolError(1007, "invalid UTF-8 in text message") from None
            else:
                self._frame(b0, payload, events)
                if self._done:
                    return
        self._tail = data[pos:] if pos < n else b""

    def _is_text(self, b0: int) -> bool:
        """Whether a frame with first header byte ``b0`` carries text (decoded, never kept)."""
        opcode = b0 & 0x0F
        return opcode == OP_TEXT or (opcode == OP_CONT and self._msg_opcode == OP_TEXT)

    # -- messages spanning frames or feeds -------------------------------------------------

    def _start_message(self, opcode: int, compressed: int, length: int) -> None:
        self._msg_opcode = opcode
        self._msg_size = length
        self._msg_frames = 1
        self._msg_parts = []
        if opcode == OP_TEXT:
            self._decoder.reset()
        if compressed:
            self._inflater = MessageInflater(self._max, self._context)

    def _stream(self, piece: bytes | memoryview, frame_complete: bool) -> None:
        """The next piece of a streamed frame's payload, in order."""
        mask = self._f_mask
        if mask is not None:
            k = self._f_offset & 3
            if k:  # the piece starts k bytes into the 4-byte mask cycle
                mask = mask[k:] + mask[:k]
            raw: bytes | memoryview = apply_mask(piece, mask)
        else:
            raw = piece
        self._f_offset += len(piece)
        self._message_data(raw, frame_complete and bool(self._f_b0 & 0x80))

    def _message_data(self, data: BytesLike, last: bool) -> None:
        """Unmasked payload of the current message, in order; `last`: its end."""
        if not last and not data:
            return  # an empty fragment adds nothing: it must not add a part either
        inflater = self._inflater
        if inflater is not None:
            try:
                data = inflater.inflate(data, last)
            except MessageInflater.TooBig:
                raise ProtocolError(
                    1009, f"message inflates to more than {self._max} bytes"
                ) from None
            except zlib.error:
                # The frames are well formed but the message is not valid for its encoding.
                raise ProtocolError(1007, "invalid permessage-deflate data") from None
        if self._msg_opcode == OP_TEXT:
            self._msg_parts.append(self._decode(data, last))
        else:
            self._msg_parts.append(data if type(data) is bytes else bytes(data))

    def _end_message(self, events: list[Event]) -> None:
        parts = self._msg_parts
        if len(parts) == 1:
            data = parts[0]
        else:
            data = "".join(parts) if self._msg_opcode == OP_TEXT else b"".join(parts)
        events.append(Message(data))
        self._msg_opcode = 0
        self._msg_size = 0
        self._msg_frames = 0
        self._msg_parts = []
        self._inflater = None

    def _frame(self, b0: int, payload: bytes | bytearray, events: list[Event]) -> None:
        """Handle a complete frame whose header already passed the checks in _parse."""
        opcode = b0 & 0x0F
        if opcode < 8:
            fin = bool(b0 & 0x80)
            self._message_data(payload, fin)
            if fin:
                self._end_message(events)
        elif opcode == OP_PING:
            events.append(Ping(bytes(payload)))
        elif opcode == OP_PONG:
            events.append(Pong(bytes(payload)))
        else:
            events.append(self._close(bytes(payload)))
            self._done = True  # RFC 6455 5.5.1: nothing more is read after a close frame

    def _decode(self, payload: BytesLike, final: int | bool) -> str:
        # RFC 6455 8.1: a text message must be valid UTF-8. The incremental decoder keeps a code
        # point split across pieces pending and raises as soon as a piece is invalid.
        decoder = self._decoder
        try:
            text = decoder.decode(payload, bool(final))
        except UnicodeDecodeError:
            raise ProtocolError(1007, "invalid UTF-8 in text message") from None
        if not final:
            pending = decoder.getstate()[0]
            # CPython keeps a truncated UTF-16 surrogate (ED A0-BF) pending instead of failing;
            # no continuation can make it valid, so fail now rather than at the next piece.
            if len(pending) > 1 and pending[0] == 0xED and pending[1] > 0x9F:
                raise ProtocolError(1007, "invalid UTF-8 in text message")
        return text

    @staticmethod
    def _close(payload: bytes) -> Close:
        n = len(payload)
        if not n:
            return Close(None, "")
        # RFC 6455 5.5.1: a non-empty close body starts with a 2-byte status code.
        if n == 1:
            raise ProtocolError(1002, "close frame with a 1-byte payload")
        code = payload[0] << 8 | payload[1]
        # RFC 6455 7.4: only defined, registered or private-use codes may be sent.
        if not is_valid_close_code(code):
            raise ProtocolError(1002, f"invalid close code {code}")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            # RFC 6455 5.5.1: the close reason is UTF-8.
            raise ProtocolError(1007, "invalid UTF-8 in close reason") from None
        return Close(code, reason)
