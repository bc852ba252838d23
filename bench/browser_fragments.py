"""How many frames a browser sends per WebSocket message (for the max_fragments default).

    python -m bench.browser_fragments          # headless Chromium via selenium

A raw WebSocket server (one thread, blaze_green's sans-I/O handshake key and frame header
rules) accepts the browser's connection and counts the frames of each message it receives;
a script in the page sends text and binary messages of 1 KiB to 4 MiB. Prints one line per
message, after the same count for the `websockets` library's client.
"""

from __future__ import annotations

import os
import socket
import threading
import time

os.environ.setdefault("BLAZE_GREEN_NO_PATCH", "1")  # a plain threaded script: no gevent here

from blaze_green.ws.handshake import accept_key

SIZES = [1024, 65536, 1 << 20, 4 << 20]
SCRIPT = (
    "const SIZES = "
    + str(SIZES)
    + """;
const ws = new WebSocket("ws://" + location.host + "/");
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  for (const n of SIZES) { ws.send("a".repeat(n)); ws.send(new Uint8Array(n)); }
  ws.send("done");
};
"""
)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve(listener: socket.socket, results: list[str]) -> None:
    while True:  # the page first (served from 127.0.0.1, so the browser may connect back)
        conn, _ = listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        if b"websocket" in head.lower():
            break
        page = b"<html><body><script>" + SCRIPT.encode() + b"</script></body></html>"
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(page), page)
        )
        conn.close()
    key = next(
        line.split(":", 1)[1].strip()
        for line in head.decode("latin-1").split("\r\n")
        if line.lower().startswith("sec-websocket-key:")
    )
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )
    frames = size = 0
    kind = ""
    while True:
        b0, b1 = recv_exact(conn, 2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(recv_exact(conn, 2), "big")
        elif n == 127:
            n = int.from_bytes(recv_exact(conn, 8), "big")
        mask = recv_exact(conn, 4)
        payload = recv_exact(conn, n)
        opcode = b0 & 0x0F
        if opcode >= 8:
            continue
        if opcode:
            kind = "text" if opcode == 1 else "binary"
            frames = size = 0
        frames += 1
        size += n
        if b0 & 0x80:
            if (
                kind == "text"
                and size == 4
                and bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) == b"done"
            ):
                break
            results.append(f"{kind} message of {size} bytes: {frames} frame(s)")
    conn.close()


def websockets_frames(size: int) -> int:
    """Frames the `websockets` library (sans-I/O client) sends for one `size`-byte message."""
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.uri import parse_uri

    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"))
    protocol.state = State.OPEN  # no handshake needed to frame a message
    protocol.send_binary(b"x" * size)
    data = b"".join(protocol.data_to_send())
    pos = frames = 0
    while pos < len(data):
        n, head = data[pos + 1] & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        pos += head + 4 + n  # + the 4-byte mask
        frames += 1
    return frames


def main() -> None:
    import websockets

    for size in SIZES:
        frames = websockets_frames(size)
        print(f"websockets {websockets.__version__}: {size} bytes in {frames} frame(s)")

    import shutil
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    results: list[str] = []
    server = threading.Thread(target=serve, args=(listener, results), daemon=True)
    server.start()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        f"--user-data-dir={tempfile.mkdtemp(prefix='fragments-chrome-')}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        print("browser:", driver.capabilities.get("browserVersion"))
        driver.get(f"http://127.0.0.1:{port}/")
        start = time.monotonic()
        server.join(60)
        print(f"server thread done: {not server.is_alive()} after {time.monotonic() - start:.1f} s")
    finally:
        driver.quit()
        listener.close()
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
