"""Sessions that cannot finish closing in time: each floods its client, which never reads.

shutdown_timeout (2 s) is shorter than close_timeout (30 s), so at SIGTERM the 1001 close
frames wait behind data the clients never take; the server must drop those connections before
its deadline and still run every on_close. Run as a script (`python shutdown_app.py`) it serves
with app.listen(port=0); `blaze-green run` and gunicorn load `shutdown_app:app`.
"""

import gevent

from blaze_green import App

# The queue limits are raised so the whole flood stays queued (the default byte bound, 16 MiB,
# would close these sessions with 1013 before the shutdown).
app = App(
    shutdown_timeout=2.0,
    close_timeout=30.0,
    ping_interval=None,
    send_queue_size=100_000,
    send_queue_bytes=64 << 20,
)
CHUNK = b"x" * 65536


def flood(ws):
    for _ in range(400):  # 25 MiB: far more than the socket buffers hold
        if ws.closed:
            return
        ws.send(CHUNK)
        gevent.sleep(0)
    print(f"shutdown-app flooded {ws.path}", flush=True)


def on_open(ws):
    app.spawn(flood, ws)


def on_close(ws):
    print(f"shutdown-app on_close code={ws.close_code} by={ws.close_initiator}", flush=True)


app.ws("/stuck", on_open=on_open, on_close=on_close)


@app.get("/count")
def count(req):
    return {"n": app.connections("/stuck")}


if __name__ == "__main__":
    app.listen(port=0)
