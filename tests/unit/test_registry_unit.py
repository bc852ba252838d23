"""The registry without sockets: weak references, pruning, exclude, one frame per kind."""

import gc

from blaze_green.ws.extensions import Deflate
from blaze_green.ws.frames import OP_TEXT
from blaze_green.ws.outgoing import Compressors, OutgoingMessage
from blaze_green.ws.registry import Registry


class FakeSession:
    def __init__(self, path, deflate=None, accept=True):
        self.path, self.deflate, self.accept = path, deflate, accept
        self.closed = False
        self.frames = []
        self.sampled = None

    def queue_frame(self, frame):
        if self.accept:
            self.frames.append(frame)
        return self.accept

    def sample_latency(self, t0):
        self.sampled = t0


class CountingCompressors(Compressors):
    def __init__(self):
        super().__init__(threshold=10)
        self.compressed = 0

    def compressor(self, bits):
        outer = self
        real = super().compressor(bits)

        class Counting:
            def compress(self, payload):
                outer.compressed += 1
                return real.compress(payload)

        return Counting()


def message(text="x" * 200, compressors=None):
    return OutgoingMessage(OP_TEXT, text.encode(), compressors or Compressors(threshold=10))


def test_register_count_sessions_and_paths():
    reg = Registry()
    a, b, c = FakeSession("/a"), FakeSession("/a"), FakeSession("/b")
    for s in (a, b, c):
        reg.register(s)
    assert reg.count("/a") == 2 and reg.count("/b") == 1 and reg.count("/none") == 0
    assert sorted(reg.paths()) == ["/a", "/b"]
    assert reg.counts() == {"/a": 2, "/b": 1}
    reg.unregister(a)
    assert reg.sessions("/a") == [b]


def test_dead_and_closed_sessions_are_pruned_by_the_next_look():
    reg = Registry()
    keep, closed = FakeSession("/p"), FakeSession("/p")
    reg.register(keep)
    reg.register(closed)
    reg.register(FakeSession("/p"))  # only the registry holds it: weak, so it goes
    gc.collect()
    closed.closed = True
    assert reg.sessions("/p") == [keep]
    assert reg.counts() == {"/p": 1}
    keep.closed = True
    assert reg.paths() == ["/p"] and reg.sessions("/p") == [] and reg.paths() == []


def test_deliver_with_exclude_one_or_many_and_counts_who_took_it():
    reg = Registry()
    sessions = [FakeSession("/f") for _ in range(4)]
    sessions[3].accept = False  # closes now (overflow): not counted
    for s in sessions:
        reg.register(s)
    assert reg.deliver("/f", message(), exclude=sessions[0]) == 2
    assert reg.deliver("/f", message(), exclude=[sessions[0], sessions[1]]) == 1
    assert [len(s.frames) for s in sessions] == [0, 1, 2, 0]


def test_one_plain_and_one_compressed_frame_per_broadcast_shared_by_all():
    reg = Registry()
    compressors = CountingCompressors()
    plain = [FakeSession("/f") for _ in range(3)]
    deflated = [FakeSession("/f", Deflate()) for _ in range(3)]
    for s in plain + deflated:
        reg.register(s)
    assert reg.deliver("/f", message(compressors=compressors), sample=12.5) == 6
    assert compressors.compressed == 1  # compressed once for the three
    frames = {id(s.frames[0]) for s in plain}, {id(s.frames[0]) for s in deflated}
    assert len(frames[0]) == 1 and len(frames[1]) == 1  # the same bytes objects, shared
    assert plain[0].frames[0][0] == 0x81 and deflated[0].frames[0][0] == 0xC1  # RSV1 set
    assert deflated[-1].sampled == 12.5  # the last session takes the latency sample


def test_below_the_threshold_everyone_gets_the_plain_frame():
    reg = Registry()
    compressors = CountingCompressors()
    a, b = FakeSession("/f"), FakeSession("/f", Deflate())
    reg.register(a)
    reg.register(b)
    reg.deliver("/f", message("tiny", compressors))
    assert compressors.compressed == 0 and a.frames[0] is b.frames[0]
