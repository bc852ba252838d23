"""Idle memory per session, wss vs ws: `python -m bench.tls_idle [N]` (default 1000).

The method of the `idle_memory` scenario (server RSS before connecting and after N WebSocket
handshakes, once it has settled, divided by N), with the websockets asyncio client, since the C
load generator has no TLS. Two fresh `blaze-green run` servers of one small app: plain, and
with a trustme certificate. permessage-deflate is not offered.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

APP = """
from blaze_green import App

app = App(ping_interval=None)
app.ws("/idle")


@app.get("/count")
def count(req):
    return {"n": app.connections("/idle")}
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(x for x in f if x.startswith("VmRSS:")).split()[1])


def settled_rss(pid: int, seconds: float = 3.0) -> int:
    """RSS once it has stopped changing for a second (or after `seconds`)."""
    last, stable_since = rss_kib(pid), time.monotonic()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = rss_kib(pid)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 1.0:
            break
    return last


async def hold(url: str, n: int, ctx: ssl.SSLContext | None, pid: int) -> int:
    from websockets.asyncio.client import connect

    sockets = []
    try:
        for start in range(0, n, 100):  # batches: the listen backlog and the handshakes
            batch = [
                connect(url, ssl=ctx, compression=None, open_timeout=30, ping_interval=None)
                for _ in range(min(100, n - start))
            ]
            sockets += await asyncio.gather(*batch)
        return await asyncio.to_thread(settled_rss, pid, 5.0)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def measure(n: int, tls: bool, workdir: Path, certs: dict[str, str]) -> tuple[float, int, int]:
    from blaze_green.testing import ServerProcess

    args = ["--certfile", certs["cert"], "--keyfile", certs["key"]] if tls else []
    with ServerProcess("idleapp:app", cwd=workdir, args=args) as server:
        assert server.pid is not None
        before = settled_rss(server.pid)
        ctx = ssl.create_default_context(cafile=certs["ca"]) if tls else None
        after = asyncio.run(hold(server.ws_url("/idle"), n, ctx, server.pid))
    return (after - before) / n, before, after


def main() -> None:
    os.environ.setdefault("BLAZE_GREEN_NO_PATCH", "1")  # this process is the client
    import trustme

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    workdir = Path(tempfile.mkdtemp(prefix="tls-idle-"))
    (workdir / "idleapp.py").write_text(APP)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certs = {k: str(workdir / f"{k}.pem") for k in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(certs["ca"])
    cert.cert_chain_pems[0].write_to_path(certs["cert"])
    cert.private_key_pem.write_to_path(certs["key"])
    results = {}
    for tls in (False, True):
        per, before, after = measure(n, tls, workdir, certs)
        name = "wss" if tls else "ws"
        results[name] = per
        print(f"{name}: {n} idle sessions, RSS {before} -> {after} KiB: {per:.1f} KiB per session")
    print(f"wss - ws: {results['wss'] - results['ws']:.1f} KiB per session")


if __name__ == "__main__":
    main()
