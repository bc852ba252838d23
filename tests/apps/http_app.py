"""HTTP test app: every return convention, error status and request accessor."""

import socket
from dataclasses import dataclass

from blaze_green import App, HTTPError, Json, Response, model
from blaze_green.server import UpgradeHandler

app = App(max_body_size=1024)

# Instrumentation (test-only): count socket writes and record TCP_NODELAY per connection.
WRITES = [0]
NODELAY = []
_orig_sendall = UpgradeHandler._sendall
_orig_init = UpgradeHandler.__init__


def _counting_sendall(self, data):
    WRITES[0] += 1
    return _orig_sendall(self, data)


def _recording_init(self, sock, *args, **kwargs):
    _orig_init(self, sock, *args, **kwargs)
    NODELAY.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


UpgradeHandler._sendall = _counting_sendall
UpgradeHandler.__init__ = _recording_init


@model
@dataclass
class Update:
    type: str
    value: float


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


model(Point, "x", "y")


class Bare:
    """A plain class whose constructor takes no fields."""


model(Bare, "name")


@app.get("/hello")
def hello(req):
    return "hi"


@app.get("/unicode")
def unicode(req):
    return "héllo ✓"


@app.get("/bytes")
def raw_bytes(req):
    return b"\x00\x01\x02"


@app.get("/dict")
def a_dict(req):
    return {"a": 1, "b": [1, 2]}


@app.get("/list")
def a_list(req):
    return [Update("t", 1.5), Update("u", 2.0)]


@app.get("/json")
def a_json(req):
    return Json([1, "two", None])


@app.get("/model")
def a_model(req):
    return Update("ticker", 89500.5)


@app.get("/point")
def a_point(req):
    return Point(1, 2)


@app.get("/tuple2")
def tuple2(req):
    return "created", 201


@app.get("/tuple3")
def tuple3(req):
    return {"ok": True}, 202, {"X-Extra": "yes"}


@app.get("/response")
def response(req):
    return Response(
        "<p>x</p>", 200, {"Content-Type": "text/plain", "X-A": "1"}, content_type="text/csv"
    )


@app.get("/response-header-type")
def response_header_type(req):
    return Response(b"abc", headers={"Content-Type": "image/png"})


@app.get("/none")
def none(req):
    return None


@app.get("/users/:id")
def user(req, id: int):
    return {"id": id, "type": type(id).__name__}


@app.get("/price/:value")
def price(req, value: float):
    return {"value": value}


@app.get("/files/:name/raw")
def file_raw(req, name):
    return {"name": name}


@app.get("/static/path")
def static_wins(req):
    return "static"


@app.get("/static/:other")
def dynamic(req, other):
    return "dynamic"


@app.get("/query")
def query(req):
    return {"q": req.query.get("q"), "all": req.query.getlist("t"), "path": req.path}


@app.get("/headers")
def headers(req):
    return {
        "ua": req.headers.get("user-agent"),
        "x": req.headers.get("X-CUSTOM"),
        "has": "x-custom" in req.headers,
        "remote": req.remote_addr,
        "method": req.method,
    }


@app.post("/echo-json")
def echo_json(req):
    return {"got": req.json}


@app.post("/updates")
def post_update(req):
    update = req.body(Update)
    return {"type": update.type, "value": update.value, "cls": type(update).__name__}, 201


@app.post("/points")
def post_point(req):
    point = req.body(Point)
    return {"x": point.x, "y": point.y, "cls": type(point).__name__}


@app.post("/bare")
def post_bare(req):
    bare = req.body(Bare)
    return {"name": bare.name, "cls": type(bare).__name__}


@app.post("/size")
def size(req):
    return {"size": len(req.data)}


@app.put("/item/:id")
def put_item(req, id: int):
    return {"put": id}


@app.patch("/item/:id")
def patch_item(req, id: int):
    return {"patch": id}


@app.delete("/item/:id")
def delete_item(req, id: int):
    return {"deleted": id}


app.route("/multi", ["GET", "POST"], lambda req: {"method": req.method})


@app.get("/teapot")
def teapot(req):
    raise HTTPError(418, "short and stout")


@app.get("/boom")
def boom(req):
    raise RuntimeError("kaboom in handler")


@app.get("/bad-return")
def bad_return(req):
    return object()


@app.get("/stats/writes")
def writes(req):
    return {"writes": WRITES[0]}


@app.get("/stats/nodelay")
def nodelay(req):
    return {"nodelay": NODELAY}


@app.get("/environ")
def environ(req):
    env = req.environ
    return {"raw_uri": env.get("RAW_URI"), "has_gunicorn_sock": "gunicorn.sock" in env}


app.ws("/feed", on_message=lambda ws, msg: ws.send(msg))


@app.get("/spin")
def spin(req):
    """Blocks the hub with CPU work for 0.5 s: what debug mode's monitor must name."""
    import time

    end = time.perf_counter() + 0.5
    n = 0
    while time.perf_counter() < end:
        n += 1
    return {"n": n}


@app.get("/header/:name")
def one_header(req, name):
    return {"value": req.headers.get(name)}


@app.get("/big/:n")
def big(req, n: int):
    return bytes(range(256)) * (n // 256)
