"""A small app as a user writes it, for `mypy --strict tests/typing/user_app.py` (never run).

Checks that the public API keeps its types through the decorators: a decorated handler is
still the function it was (assignments below pin the types), `@task` keeps its parameters,
`@model` keeps the class.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Callable

from blaze_green import (
    App,
    Config,
    ConnectionClosed,
    HTTPError,
    Json,
    Request,
    Response,
    Task,
    WebSocket,
    WebSocketHandlers,
    delay,
    model,
    task,
)


def authenticate(req: Request) -> str | None:
    return req.headers.get("X-User")


app = App(
    before_open=authenticate,
    max_message_size=64 * 1024,
    max_body_size=None,
    send_queue_size=256,
    ping_interval=20.0,
    ping_timeout=None,
    allowed_origins=["https://example.com"],
    max_connections=10_000,
    shutdown_timeout=5,
    close_timeout=2.5,
    coalesce_window=0.001,
    broker=None,
    metrics=True,
    debug=False,
)
config: Config = app.config
limit: int | None = config.max_message_size


@model
@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: str = ""


class Plain:
    def __init__(self, name: str) -> None:
        self.name = name


PlainModel: type[Plain] = model(Plain, "name")


# -- HTTP routes: decorated handlers keep their exact types ----------------------------------


@app.get("/hello")
def hello(req: Request) -> str:
    return f"hello {req.query.get('name', 'world')}"


@app.get("/items/:item_id")
def item(req: Request, item_id: str) -> Json:
    return Json({"id": item_id, "tags": req.query.getlist("tag")})


@app.post("/points")
def add_point(req: Request) -> Response:
    point = req.body(Point)
    if point.x < 0:
        raise HTTPError(422, "x must be >= 0", [("X-Reason", "negative")])
    return Response(point, 201, {"Location": "/points/1"})


@app.put("/points/:n")
def put_point(req: Request, n: str) -> Point:
    return Point(float(n), 0.0)


@app.patch("/points/:n")
def patch_point(req: Request, n: str) -> dict[str, object]:
    return {"n": n, "patch": req.json}


@app.delete("/points/:n")
def delete_point(req: Request, n: str) -> bytes:
    return b""


@app.route("/status", ["GET", "HEAD"])
def status(req: Request) -> dict[str, str]:
    return {"status": "alive", "content_type": req.content_type}


def health(req: Request) -> str:
    return "ok"


registered = app.get("/health", health)

hello_fn: Callable[[Request], str] = hello
item_fn: Callable[[Request, str], Json] = item
add_point_fn: Callable[[Request], Response] = add_point
put_point_fn: Callable[[Request, str], Point] = put_point
patch_point_fn: Callable[[Request, str], dict[str, object]] = patch_point
delete_point_fn: Callable[[Request, str], bytes] = delete_point
status_fn: Callable[[Request], dict[str, str]] = status
health_fn: Callable[[Request], str] = registered
greeting: str = hello(Request({"PATH_INFO": "/hello"}))


# -- WebSockets -----------------------------------------------------------------------------


def on_open(ws: WebSocket) -> None:
    user: object = ws.user_data
    ws.send({"joined": ws.path, "user": user, "room": ws.params.get("room")})


def on_message(ws: WebSocket, data: object) -> None:
    sent: int = app.broadcast(ws.path, data, exclude=ws)
    if sent == 0:
        ws.close(1000, "alone")


def on_close(ws: WebSocket) -> None:
    code: int | None = ws.close_code
    app.broadcast(ws.path, Json({"left": ws.remote_addr, "code": code}))


chat: WebSocketHandlers = app.ws(
    "/chat/:room",
    on_open=on_open,
    on_message=on_message,
    on_close=on_close,
    before_open=authenticate,
    subprotocols=["chat.v1"],
)
echo = app.ws("/echo", WebSocketHandlers(on_message=lambda ws, data: ws.send(data)))


@app.get("/rooms/:room")
def room_info(req: Request, room: str) -> dict[str, object]:
    path = f"/chat/{room}"
    here: int = app.connections(path)
    everywhere: int = app.connections(path, cluster=True)
    sessions: list[WebSocket] = app.sessions(path)
    return {"here": here, "cluster": everywhere, "peers": [s.remote_addr for s in sessions]}


# -- tasks ----------------------------------------------------------------------------------


@task
def monitor_loop(app: App) -> None:
    while True:
        for ws in app.sessions("/chat/lobby"):
            with contextlib.suppress(ConnectionClosed):
                ws.send(Json({"ping": datetime.datetime.now().isoformat()}))
        delay(datetime.timedelta(seconds=5))


@task
def countdown(start: int, *, step: int = 1) -> int:
    n = start
    while n > 0:
        n -= step
        delay(0.5)
    return n


monitor: Task = monitor_loop(app)
build_countdown: Callable[[int], Task] = countdown
g1 = app.spawn(monitor)
g2 = app.spawn(countdown(10, step=2), singleton="countdown")
g3 = app.spawn(delay, 1.0)


@app.on_start
def started() -> None:
    delay(0)


started_fn: Callable[[], None] = started
stats: dict[str, object] = app.stats()

if __name__ == "__main__":
    app.listen(8080, "0.0.0.0", access_log=True)
