"""Interest-based routing's bookkeeping (blaze_green.broker.interest) and the RESP bits of the
publish connection (blaze_green.broker.resp): no sockets."""

import pytest

from blaze_green.broker.interest import Interest
from blaze_green.broker.resp import encode_command, split_replies


def make():
    return Interest(lambda path: b"ch:" + path.encode())


def test_first_session_subscribes_and_waits_for_the_reply():
    i = make()
    ev = i.watch("/a")
    assert ev is not None and not ev.is_set()
    later = i.watch("/a")  # a second session while the SUBSCRIBE is in flight waits too
    assert later is not None
    assert i.take_changes() == [(b"SUBSCRIBE", [b"ch:/a"])]
    i.confirmed(b"ch:/a")
    assert ev.is_set() and later.is_set()
    assert i.watch("/a") is None  # confirmed: nothing to wait for
    assert i.take_changes() == []


def test_subscribe_unsubscribe_subscribe_matches_replies_in_order():
    i = make()
    first = i.watch("/a")
    assert i.unwatch("/a") and not i.unwatch("/a")
    second = i.watch("/a")
    assert i.take_changes() == [
        (b"SUBSCRIBE", [b"ch:/a"]),
        (b"UNSUBSCRIBE", [b"ch:/a"]),
        (b"SUBSCRIBE", [b"ch:/a"]),
    ]
    i.confirmed(b"ch:/a")  # the first SUBSCRIBE's reply must not release the second's waiter
    assert first.is_set() and not second.is_set()
    i.confirmed(b"ch:/a")
    assert second.is_set()


def test_resubscribe_after_a_reconnection():
    i = make()
    waiting = i.watch("/a")
    i.watch("/b")
    i.confirmed(b"ch:/b")
    gone = i.watch("/c")
    i.unwatch("/c")
    assert sorted(i.resubscribe()) == [b"ch:/a", b"ch:/b"]
    assert gone.is_set()  # not watched any more: nothing to wait for
    assert i.take_changes() == []  # the full SUBSCRIBE replaces what was queued
    i.confirmed(b"ch:/b")
    assert not waiting.is_set()
    i.confirmed(b"ch:/a")
    assert waiting.is_set()


def test_consecutive_changes_are_merged_into_one_command():
    i = make()
    for p in ("/a", "/b", "/c"):
        i.watch(p)
    i.unwatch("/a")
    i.unwatch("/b")
    assert i.take_changes() == [
        (b"SUBSCRIBE", [b"ch:/a", b"ch:/b", b"ch:/c"]),
        (b"UNSUBSCRIBE", [b"ch:/a", b"ch:/b"]),
    ]


def test_resp_encoding_and_replies():
    assert (
        encode_command(b"PUBLISH", b"c", b"x\r\ny")
        == b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$4\r\nx\r\ny\r\n"
    )
    buf = bytearray(b":1\r\n+OK\r\n-ERR no\r\n:2")
    assert split_replies(buf) == [b":1", b"+OK", b"-ERR no"]
    assert buf == b":2"  # an incomplete reply stays for the next read
    with pytest.raises(ValueError):
        split_replies(bytearray(b"$3\r\nabc\r\n"))
