"""Hard limits on what one WebSocket client can make the server hold, against a real server:
pongs count against the send queue (a ping flood from a non-reader is closed with 1013), the
send queue is bounded in bytes as well as in messages (per-session sends and broadcasts
alike), and a message of too many fragments (empty ones included) is closed with 1009."""

from __future__ import annotations

import re
import time

import requests
from wsraw import RawWS

from blaze_green.testing import wait_until
from blaze_green.ws.frames import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, Close, Pong, encode_frame

MASK = b"\x11\x22\x33\x44"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def count(server, path: str = "/echo") -> int:
    return requests.get(server.url + "/count", params={"path": path}, timeout=5).json()["count"]


def overflow_line(server) -> re.Match[str]:
    return server.wait_for_output(
        r"closing /echo session .*: (\d+) messages \((\d+) bytes\) not yet written", timeout=20
    )


def warm_up(server) -> None:
    with RawWS.connect(server.port) as ws:  # imports and first allocations happen here
        ws.send_text("warm")
        assert ws.recv_message() == "warm"
        ws.send_binary(b"x" * 100_000)
        assert ws.recv_message() == b"x" * 100_000


# -- ping flood --------------------------------------------------------------------------------


def test_ping_flood_from_a_non_reader_is_closed_with_1013_and_memory_stays_bounded(serve):
    server = serve("ws_app:app")  # default limits: send_queue_size 1024, send_queue_bytes 16 MiB
    warm_up(server)
    before = rss_kib(server.proc.pid)
    ping = encode_frame(OP_PING, b"p" * 125, mask=MASK)  # 131 bytes; its pong is 127
    batch = ping * 1000
    sent = 0
    with RawWS.connect(server.port, rcvbuf=4096) as ws:
        ws.sock.settimeout(10)
        try:
            for _ in range(200):  # 200,000 pings (26 MB), never reading a byte
                ws.sock.sendall(batch)
                sent += 1000
        except OSError:
            pass  # the server dropped the connection after its close frame went unread
        server.wait_for_output(r"ws-app close sid=\d+ code=1013 reason=send queue overflow")
        frames = int(overflow_line(server).group(1))
        assert frames <= 1024  # the pongs waiting were bounded by send_queue_size
        during = rss_kib(server.proc.pid)
        assert ws.wait_eof(timeout=15)  # dropped within close_timeout: the 1013 went unread
    growth = during - before
    print(f"pings sent {sent}, RSS before {before} KiB, after the flood {during} KiB")
    assert growth < 8 * 1024, f"RSS grew {growth} KiB under a ping flood"
    wait_until(lambda: count(server) == 0, 5, what="the flooding session to leave")
    with RawWS.connect(server.port) as ws:  # the server goes on serving
        ws.send_text("after")
        assert ws.recv_message() == "after"


def test_a_ping_flood_does_not_starve_the_hub_the_drop_comes_mid_flood(serve):
    # A peer that keeps the socket full must not keep the reader from yielding: the hub still
    # serves HTTP and fires the close timer while the flood goes on.
    server = serve("ws_app:app", env={"CLOSE_TIMEOUT": "1"})
    batch = encode_frame(OP_PING, b"p" * 125, mask=MASK) * 1000
    answered: list[float] = []
    with RawWS.connect(server.port, rcvbuf=4096) as ws:
        start = time.monotonic()
        dropped = None
        try:
            while time.monotonic() - start < 20:  # up to 20 s of flood, never reading
                ws.sock.sendall(batch)
                if not answered and time.monotonic() - start > 0.5:
                    t0 = time.monotonic()
                    assert count(server) == 0  # the 1013 took it out of the registry
                    answered.append(time.monotonic() - t0)
        except OSError:
            dropped = time.monotonic() - start
    print(f"GET /count during the flood: {answered} s; connection dropped after {dropped} s")
    assert dropped is not None and dropped < 8, "the close timer did not fire during the flood"
    assert answered and answered[0] < 2


def test_a_client_that_reads_its_pongs_gets_every_one_and_stays_open(serve):
    # A queue of 8: the server writes pongs as they come, so a reading client never fills it.
    server = serve("ws_app:app", env={"SEND_QUEUE": "8"})
    with RawWS.connect(server.port) as ws:
        for i in range(50):
            pings = [encode_frame(OP_PING, b"%d-%d" % (i, k), mask=MASK) for k in range(20)]
            ws.send_raw(b"".join(pings))  # one read holds more pings than the queue
            for k in range(20):
                pong, _ = ws.recv_until((Pong,))
                assert pong.payload == b"%d-%d" % (i, k)
        ws.send_text("still open")
        assert ws.recv_message() == "still open"


# -- the send queue in bytes ---------------------------------------------------------------------


def test_send_queue_bytes_default_closes_a_non_reader_of_100k_sends_with_1013(serve):
    # Default limits: 16 MiB. 100 KiB messages reach it long before send_queue_size (1024).
    # close_timeout 30: time for this client to drain what the kernel holds before the 1013
    server = serve("ws_app:app", env={"CLOSE_TIMEOUT": "30"})
    warm_up(server)
    before = rss_kib(server.proc.pid)
    with RawWS.connect(server.port) as ws:
        ws.send_text("!flood 102400")  # ws.send of 100 KiB until the session closes
        match = overflow_line(server)
        frames, queued = int(match.group(1)), int(match.group(2))
        after = rss_kib(server.proc.pid)  # the queue was freed at the overflow
        print(f"closed at {frames} frames, {queued} bytes queued; RSS {before} -> {after} KiB")
        assert frames < 1024
        assert queued <= 16 * 1024 * 1024
        assert queued > 15 * 1024 * 1024  # it was the byte bound that closed it
        assert "send_queue_bytes 16777216" in match.string
        # The client that drains now reads the frame that was in flight, then the 1013.
        close, skipped = ws.recv_until((Close,), timeout=15)
        assert close.code == 1013
        assert all(len(m.data) == 102400 for m in skipped)  # only whole messages
    server.wait_for_output(r"ws-app close sid=\d+ code=1013 reason=send queue overflow")
    # bounded: the queue's 16 MiB plus slack, not the ~100 MB the issue measured
    assert after - before < 24 * 1024


def test_send_queue_bytes_counts_a_shared_broadcast_frame_per_session(serve):
    server = serve("ws_app:app", env={"SEND_QUEUE_BYTES": str(1 << 20), "CLOSE_TIMEOUT": "30"})
    readers = [RawWS.connect(server.port) for _ in range(3)]
    try:
        with RawWS.connect(server.port) as sender:
            # 300 broadcasts of 100 KiB (30 MB, past what the kernel buffers hold), each one
            # frame built once and shared by the three sessions
            sender.send_text("!broadcast 102400 300")
            assert sender.recv_message(timeout=30).startswith("broadcast done")
        wait_until(
            lambda: len(re.findall(r"not yet written", server.output)) >= 3,
            20,
            what="three overflows",
        )
        matches = re.findall(r"(\d+) messages \((\d+) bytes\) not yet written", server.output)
        assert len(matches) == 3
        for frames, queued in matches:
            assert int(frames) < 20  # far below send_queue_size: the bytes closed them
            assert int(queued) <= 1 << 20
        for ws in readers:  # each reads what was in flight, then the 1013
            close, _ = ws.recv_until((Close,), timeout=15)
            assert close.code == 1013
    finally:
        for ws in readers:
            ws.close()


def test_one_message_larger_than_send_queue_bytes_still_goes_out(serve):
    server = serve("ws_app:app", env={"SEND_QUEUE_BYTES": "65536", "MAX_MSG": str(1 << 20)})
    with RawWS.connect(server.port) as ws:
        ws.send_binary(b"z" * 200_000)  # echoed: one frame over the bound on an empty queue
        assert ws.recv_message(timeout=10) == b"z" * 200_000


# -- fragments ------------------------------------------------------------------------------------


def fragments(n: int, piece: bytes = b"", opcode: int = OP_TEXT) -> bytes:
    """A message of `n` frames: a first frame "a", then n-1 continuations of `piece`."""
    out = [encode_frame(opcode, b"a", fin=False, mask=MASK)]
    out += [encode_frame(OP_CONT, piece, fin=i == n - 1, mask=MASK) for i in range(1, n)]
    return b"".join(out)


def test_max_fragments_default_1024_passes_and_1025_closes_with_1009(serve):
    server = serve("ws_app:app")
    with RawWS.connect(server.port) as ws:
        ws.send_raw(fragments(1024, b"b", OP_BINARY))
        assert ws.recv_message() == b"a" + b"b" * 1023
        ws.send_raw(fragments(1025, b"b", OP_BINARY))
        close = ws.recv_close()
        assert close.code == 1009
        assert "1024 fragments" in close.reason
        assert ws.wait_eof()
    server.wait_for_output(r"closing .* with 1009: message of more than 1024 fragments")


def test_a_flood_of_empty_continuation_frames_is_closed_with_1009(serve):
    server = serve("ws_app:app")
    warm_up(server)
    before = rss_kib(server.proc.pid)
    with RawWS.connect(server.port) as ws:
        ws.send_raw(encode_frame(OP_TEXT, b"a", fin=False, mask=MASK))
        empty = encode_frame(OP_CONT, b"", fin=False, mask=MASK) * 10_000
        try:
            for _ in range(100):  # up to a million empty frames; the server stops it at 1025
                ws.sock.sendall(empty)
        except OSError:
            pass
        assert ws.recv_close().code == 1009
    assert rss_kib(server.proc.pid) - before < 4 * 1024


def test_max_fragments_none_accepts_many_empty_fragments_without_growing(serve):
    server = serve("ws_app:app", env={"MAX_FRAGMENTS": "none"})
    warm_up(server)
    before = rss_kib(server.proc.pid)
    with RawWS.connect(server.port) as ws:
        ws.send_raw(encode_frame(OP_TEXT, b"a", fin=False, mask=MASK))
        empty = encode_frame(OP_CONT, b"", fin=False, mask=MASK) * 10_000
        for _ in range(50):  # 500,000 empty continuation frames
            ws.sock.sendall(empty)
        ws.send_raw(encode_frame(OP_CONT, b"z", fin=True, mask=MASK))
        assert ws.recv_message(timeout=20) == "az"
        growth = rss_kib(server.proc.pid) - before
    print(f"500,000 empty fragments: RSS +{growth} KiB")
    assert growth < 4 * 1024
