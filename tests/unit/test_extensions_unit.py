"""permessage-deflate negotiation and the codec pieces, byte by byte (RFC 7692)."""

import os
import zlib

import pytest

from blaze_green.ws.extensions import (
    Deflate,
    ExtensionHeaderError,
    MessageInflater,
    negotiate_deflate,
    parse_extensions,
)
from blaze_green.ws.outgoing import SharedCompressor

BOTH = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def test_parse_offers_params_and_quoted_values():
    header = 'foo, permessage-deflate; client_max_window_bits; server_max_window_bits="10", x;a=1'
    assert parse_extensions(header) == [
        ("foo", []),
        (
            "permessage-deflate",
            [("client_max_window_bits", None), ("server_max_window_bits", "10")],
        ),
        ("x", [("a", "1")]),
    ]


def test_several_headers_joined_with_commas_parse_as_one_list():
    assert [name for name, _ in parse_extensions("a, b,  ,c")] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "header",
    ["permessage-deflate; =1", 'permessage-deflate; a="unterminated', "per message", "; x", "a;;b"],
)
def test_malformed_headers_raise(header):
    with pytest.raises(ExtensionHeaderError):
        negotiate_deflate(header)


@pytest.mark.parametrize(
    ("header", "answer"),
    [
        ("permessage-deflate", BOTH),
        ("permessage-deflate; client_max_window_bits", BOTH),  # Chromium's offer
        ("permessage-deflate; client_max_window_bits=10", BOTH),
        ("permessage-deflate; server_no_context_takeover", BOTH),
        ("permessage-deflate; client_no_context_takeover", BOTH),
        ("permessage-deflate; server_max_window_bits=10", BOTH + "; server_max_window_bits=10"),
        ('permessage-deflate; server_max_window_bits="12"', BOTH + "; server_max_window_bits=12"),
        ("PerMessage-Deflate; Server_Max_Window_Bits=15", BOTH + "; server_max_window_bits=15"),
    ],
)
def test_accepted_offers_and_the_answer(header, answer):
    assert negotiate_deflate(header).response() == answer


@pytest.mark.parametrize(
    "header",
    [
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot deflate with 8 bits
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=09",
        "permessage-deflate; server_max_window_bits",  # needs a value
        "permessage-deflate; client_max_window_bits=20",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; unknown_param",
    ],
)
def test_declined_offers(header):
    assert negotiate_deflate(header) is None


def test_the_first_acceptable_offer_wins():
    header = (
        "permessage-deflate; server_max_window_bits=8, "
        "permessage-deflate; server_max_window_bits=11"
    )
    assert negotiate_deflate(header) == Deflate(11, offered_server_bits=True)
    assert negotiate_deflate(None) is None and negotiate_deflate("") is None


def test_shared_compressor_messages_stand_alone():
    c = SharedCompressor()
    a, b = c.compress(b"hello " * 100), c.compress(b"hello " * 100)
    assert a == b  # no context carried from one message to the next: the same bytes
    assert not a.endswith(b"\x00\x00\xff\xff")
    for data in (a, b):  # each inflates alone, as a fresh client inflater would
        assert zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff") == b"hello " * 100


def test_inflater_stops_a_bomb_at_the_limit():
    bomb = SharedCompressor(level=9).compress(b"\0" * (64 << 20))  # 64 MiB of zeros
    assert len(bomb) < 100_000
    inflater = MessageInflater(limit=1 << 20)
    with pytest.raises(MessageInflater.TooBig):
        inflater.inflate(bomb, final=True)


def test_inflater_pieces_and_corrupt_data():
    payload = os.urandom(5000) + b"x" * 5000
    data = SharedCompressor().compress(payload)
    inflater = MessageInflater(limit=len(payload))
    out = inflater.inflate(data[:100]) + inflater.inflate(data[100:], final=True)
    assert out == payload
    with pytest.raises(MessageInflater.TooBig):
        MessageInflater(limit=len(payload) - 1).inflate(data, final=True)
    with pytest.raises(zlib.error):
        MessageInflater(None).inflate(b"\xff\xff\xff\xff", final=True)
