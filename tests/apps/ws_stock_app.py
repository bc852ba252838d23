"""ws_app's routes for a server without the WebSocket handler (gunicorn -k gevent).

ServerProcess(mode="gunicorn") waits for each worker's "blaze_green worker N serving" line,
which only our worker prints; under the stock worker this module prints it when the worker
imports the app (gunicorn imports it in each worker, after the listening socket is bound, so a
connection made after this line is queued until the worker accepts it).
"""

import os

from ws_app import app

__all__ = ["app"]


@app.get("/hello")
def hello(req):
    return "hi"


print(
    f"blaze_green worker {os.getpid()} serving (stock worker; printed by ws_stock_app)", flush=True
)
