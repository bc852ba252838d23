"""Bench ceiling: a gevent StreamServer with a hand-written minimal WebSocket server.

python bench/servers/raw_gevent.py PORT
No framework at all: minimal handshake, a minimal frame parser for masked client
frames (echo), and for fan-out ONE unmasked text frame built per message, written
with one sock.sendall(frame) per socket per message. TCP_NODELAY on.
Not a conforming server (no UTF-8 validation, no fragmentation support): it is the
floor of Python-side cost on gevent that a framework can approach.
"""

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import hashlib  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from _proto import WAIT_LIMIT_S, WAIT_POLL_S, message, padding, parse_go, port_from_argv  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
subscribers = []


def frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def unmask(mask, payload):
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class Conn:
    __slots__ = ("sock", "buf")

    def __init__(self, sock, buf):
        self.sock = sock
        self.buf = buf

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_frame(self):
        """(opcode, payload) of the next frame; client frames are masked."""
        b0, b1 = self.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.read_exact(8))
        mask = self.read_exact(4) if b1 & 0x80 else None
        payload = self.read_exact(n)
        if mask:
            payload = unmask(mask, payload)
        return b0 & 0x0F, payload

    def messages(self):
        """Yield (opcode, payload) for data frames; answers pings and closes."""
        while True:
            op, payload = self.read_frame()
            if op == 0x8:
                self.sock.sendall(frame(0x8, payload[:2]))
                return
            if op == 0x9:
                self.sock.sendall(frame(0xA, payload))
            elif op in (0x1, 0x2):
                yield op, payload


def echo(conn):
    for op, payload in conn.messages():
        conn.sock.sendall(frame(op, payload))


def feed(conn):
    subscribers.append(conn.sock)
    try:
        for _ in conn.messages():
            pass
    finally:
        subscribers.remove(conn.sock)


def control(conn):
    for _op, payload in conn.messages():
        go = parse_go(payload)
        if go is None:
            continue
        n, count, size = go
        deadline = time.monotonic() + WAIT_LIMIT_S
        while len(subscribers) < n and time.monotonic() < deadline:
            gevent.sleep(WAIT_POLL_S)
        pad = padding(size)
        for i in range(count):
            data = frame(0x1, message(i, pad).encode())
            for sock in list(subscribers):
                try:  # noqa: SIM105 (a context manager per send would slow the hot loop)
                    sock.sendall(data)
                except OSError:
                    pass
        conn.sock.sendall(frame(0x1, b"done"))


ROUTES = {"/echo": echo, "/feed": feed, "/control": control}


def handle(sock, _addr):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk or len(buf) > 16384:
                return
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        path = lines[0].split(b" ")[1].decode()
        key = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        route = ROUTES.get(path)
        if route is None or key is None:
            sock.sendall(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        route(Conn(sock, rest))
    except (EOFError, OSError):
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    StreamServer(("127.0.0.1", port_from_argv()), handle, backlog=1024).serve_forever()
