"""The Redis broker's wire format (pack_message / unpack_message), in-process, no Redis."""

import struct

import pytest

from blaze_green.broker.redis import WIRE_VERSION, pack_message, unpack_message

NODE = b"host:1234:ab12cd34"


@pytest.mark.parametrize(
    "node, path, opcode, payload",
    [
        (NODE, "/feed", 1, b'{"a":1}'),
        (NODE, "/feed", 2, b"\x00\x01\xff"),
        (NODE, "/chat/lobby", 1, b""),
        (b"", "/", 2, b"x"),
        (b"n" * 255, "/p", 1, b"max node id"),
        (NODE, "", 1, b"empty path"),
        (NODE, "/chat/café/日本", 1, "héllo".encode()),
        (NODE, "/p" + "x" * 65533, 2, b"longest path"),  # 65,535 bytes
    ],
)
def test_round_trip(node, path, opcode, payload):
    data = pack_message(node, path, opcode, payload)
    assert isinstance(data, bytes)
    got_node, got_path, got_opcode, got_payload = unpack_message(data)
    assert got_node == node and type(got_node) is bytes
    assert got_path == path
    assert got_opcode == opcode
    assert isinstance(got_payload, memoryview) and bytes(got_payload) == payload


def test_layout():
    data = pack_message(b"nid", "/é", 2, b"PAY")
    assert WIRE_VERSION == 1
    assert data[0] == 1  # version
    assert data[1] == 2  # opcode
    assert data[2] == 3  # node id length
    assert data[3:5] == b"\x00\x03"  # UTF-8 path length, big-endian ("/é" is 3 bytes)
    assert data[5:] == b"nid" + "/é".encode() + b"PAY"


def test_payload_is_a_view_of_the_message_not_a_copy():
    data = pack_message(NODE, "/p", 1, b"payload")
    payload = unpack_message(data)[3]
    assert payload.obj is data


def test_payload_may_contain_anything_after_the_header():
    tricky = pack_message(b"other", "/q", 2, b"more")  # a whole message as a payload
    outer = unpack_message(pack_message(NODE, "/p", 2, tricky))
    assert bytes(outer[3]) == tricky and outer[1] == "/p"


@pytest.mark.parametrize("n", [0, 1, 4])
def test_short_message(n):
    with pytest.raises(ValueError, match="message too short"):
        unpack_message(pack_message(NODE, "/p", 1, b"x")[:n])


def test_header_only_message_with_empty_fields_is_valid():
    assert unpack_message(bytes([1, 1, 0, 0, 0])) == (b"", "", 1, memoryview(b""))


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version(version):
    data = bytearray(pack_message(NODE, "/p", 1, b"x"))
    data[0] = version
    with pytest.raises(ValueError, match=f"unknown wire version {version}"):
        unpack_message(bytes(data))


def test_truncated_message():
    data = pack_message(NODE, "/path", 1, b"")
    assert unpack_message(data)[1] == "/path"
    for cut in (1, 3, len("/path") + len(NODE)):
        with pytest.raises(ValueError, match="truncated message"):
            unpack_message(data[:-cut])


def test_lengths_larger_than_the_message():
    with pytest.raises(ValueError, match="truncated message"):
        unpack_message(struct.pack("!BBBH", 1, 1, 10, 0) + b"short")
    with pytest.raises(ValueError, match="truncated message"):
        unpack_message(struct.pack("!BBBH", 1, 1, 0, 65535) + b"/p")


def test_path_that_is_not_utf8_is_a_value_error():
    data = struct.pack("!BBBH", 1, 1, 0, 2) + b"\xff\xfe" + b"payload"
    with pytest.raises(ValueError):  # UnicodeDecodeError, which the subscriber counts
        unpack_message(data)


def test_path_of_65536_bytes_is_a_struct_error():
    with pytest.raises(struct.error):
        pack_message(NODE, "/" + "x" * 65535, 1, b"")
    with pytest.raises(struct.error):  # the limit is in bytes, not characters
        pack_message(NODE, "/" + "é" * 32768, 1, b"")


def test_node_id_over_255_bytes_is_a_struct_error():
    with pytest.raises(struct.error):
        pack_message(b"n" * 256, "/p", 1, b"")


@pytest.mark.parametrize("opcode", [0, 3, 8, 9, 15])
def test_opcode_other_than_text_or_binary_is_rejected(opcode):
    with pytest.raises(ValueError, match="not a data message"):
        unpack_message(struct.pack("!BBBH", 1, opcode, 0, 2) + b"/p")
