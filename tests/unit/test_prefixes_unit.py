"""PrefixTable: the longest prefix covering a path, on segment boundaries."""

from blaze_green.prefixes import PrefixTable


def test_longest_key_on_a_segment_boundary_wins():
    table: PrefixTable[str] = PrefixTable()
    for key in ("/a", "", "/a/b"):
        assert table.add(key, key or "/")
    assert not table.add("/a", "again")  # taken: nothing changes
    assert list(table) == ["/a/b", "/a", "/"]
    assert table.find("/a/b/c") == "/a/b"
    assert table.find("/a/bc") == "/a"
    assert table.find("/a") == "/a"
    assert table.find("/ab") == "/"
    empty: PrefixTable[str] = PrefixTable()
    assert not empty and empty.find("/") is None
