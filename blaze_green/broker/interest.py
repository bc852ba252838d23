"""Interest-based routing: which paths' channels this process is subscribed to. No I/O.

A path is watched from the moment its first local session registers until its last one
leaves. Each change becomes a SUBSCRIBE or UNSUBSCRIBE for the broker's subscriber to send,
in order. Whoever waits for a subscription (the handshake of a path's first session, before
its on_open runs) waits on an Event that the matching SUBSCRIBE reply sets: Redis answers the
SUBSCRIBEs of one connection in order, so the replies for a channel are matched first-in
first-out with the SUBSCRIBEs sent for it (a subscribe, unsubscribe, subscribe sequence never
lets the first reply release a waiter of the second). After a reconnection everything watched
is subscribed again at once, and whoever still waits is released by that new reply.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from gevent.event import Event

__all__ = ["Interest"]

SUBSCRIBE = b"SUBSCRIBE"
UNSUBSCRIBE = b"UNSUBSCRIBE"


class Interest:
    def __init__(
        self,
        channel_for: Callable[[str], bytes],
        subscribe: bytes = SUBSCRIBE,
        unsubscribe: bytes = UNSUBSCRIBE,
        merge: bool = True,
    ) -> None:
        self._channel_for = channel_for
        self.subscribe = subscribe  # SSUBSCRIBE/SUNSUBSCRIBE on a Redis Cluster
        self.unsubscribe = unsubscribe
        self.merge = merge  # False for SSUBSCRIBE: the channels of one command share a slot
        self.watched: dict[str, bytes] = {}  # path -> its channel
        # channel -> one list of waiters per SUBSCRIBE sent (or to send) and not answered yet
        self._pending: dict[bytes, collections.deque[list[Event]]] = {}
        self._changes: list[tuple[bytes, bytes]] = []  # (command, channel), not sent yet

    def channel(self, path: str) -> bytes:
        ch = self.watched.get(path)
        return ch if ch is not None else self._channel_for(path)

    def watch(self, path: str) -> Event | None:
        """A session registers on `path`: None when the subscription is confirmed already,
        else the Event its SUBSCRIBE reply sets."""
        ch = self.watched.get(path)
        if ch is not None:
            waiting = self._pending.get(ch)
            if not waiting:
                return None
            ev = Event()
            waiting[-1].append(ev)  # released by the latest SUBSCRIBE's reply
            return ev
        ch = self._channel_for(path)
        self.watched[path] = ch
        ev = Event()
        self._pending.setdefault(ch, collections.deque()).append([ev])
        self._changes.append((self.subscribe, ch))
        return ev

    def unwatch(self, path: str) -> bool:
        """The last session on `path` left: True when an UNSUBSCRIBE was queued."""
        ch = self.watched.pop(path, None)
        if ch is None:
            return False
        self._changes.append((self.unsubscribe, ch))
        return True

    def confirmed(self, channel: bytes) -> None:
        """Redis answered a SUBSCRIBE for `channel`."""
        waiting = self._pending.get(channel)
        if not waiting:
            return
        for ev in waiting.popleft():
            ev.set()
        if not waiting:
            del self._pending[channel]

    def take_changes(self) -> list[tuple[bytes, list[bytes]]]:
        """The queued changes as commands, consecutive ones of a kind merged, in order."""
        out: list[tuple[bytes, list[bytes]]] = []
        for command, ch in self._changes:
            if self.merge and out and out[-1][0] == command:
                out[-1][1].append(ch)
            else:
                out.append((command, [ch]))
        self._changes.clear()
        return out

    def resubscribe(self) -> list[bytes]:
        """A new connection: every watched channel, to subscribe at once. Waiters of
        SUBSCRIBEs sent on the old connection wait for the new reply instead; waiters of a
        channel no longer watched are released (there is nothing to wait for)."""
        self._changes.clear()
        channels = list(dict.fromkeys(self.watched.values()))
        old, self._pending = self._pending, {}
        wanted = set(channels)
        for ch, lists in old.items():
            events = [ev for group in lists for ev in group]
            if ch in wanted:
                self._pending[ch] = collections.deque([events])
            else:
                for ev in events:
                    ev.set()
        for ch in channels:
            self._pending.setdefault(ch, collections.deque([[]]))
        return channels

    def release_all(self) -> None:
        """Stop: nobody waits any more."""
        for lists in self._pending.values():
            for group in lists:
                for ev in group:
                    ev.set()
        self._pending.clear()
