"""HTTP framing, limits and timeouts test app: timeouts from the environment, so tests are short."""

import os

from blaze_green import App, Response


def _seconds(name, default):
    value = os.environ.get(name)
    return float(value) if value else default


app = App(
    max_body_size=4096,
    header_timeout=_seconds("STRICT_HEADER_TIMEOUT", 10.0),
    keepalive_timeout=_seconds("STRICT_KEEPALIVE_TIMEOUT", 20.0),
    body_timeout=_seconds("STRICT_BODY_TIMEOUT", 30.0),
)


@app.get("/hello")
def hello(req):
    return "hi"


@app.get("/where")
def where(req):
    return {"path": req.path, "query": req.query.get("q"), "host": req.headers.get("host")}


@app.post("/size")
def size(req):
    return {"size": len(req.data)}


@app.post("/ignore")
def ignore(req):
    return "ignored"  # never reads the body


@app.get("/echo-header/:value")
def echo_header(req, value):
    return Response("x", headers={"X-Echo": value})


@app.get("/latin")
def latin(req):
    return Response("x", headers={"X-Name": "caf\u00e9 \u2713"})
