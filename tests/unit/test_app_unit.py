"""App's facade without a server: one meaning per name, patterns refused, one exception base."""

import pytest

import blaze_green
from blaze_green import App, BlazeGreenError, ConnectionClosed
from blaze_green import testing as bg_testing


def make_app():
    app = App()
    app.ws("/feed")
    app.ws("/chat/:room")
    app.ws("/files/*rest")
    return app


def test_connections_is_always_an_int_and_sessions_always_a_list():
    app = make_app()
    assert app.connections("/feed") == 0 and type(app.connections("/feed")) is int
    assert app.connections("/feed", cluster=True) == 0  # no broker: this process
    assert app.sessions("/feed") == []
    assert app.connections("/chat/lobby") == 0
    assert app.broadcast("/feed", {"n": 1}) == 0  # nobody there yet


@pytest.mark.parametrize("pattern", ["/chat/:room", "/files/*rest"])
@pytest.mark.parametrize("call", ["broadcast", "connections", "sessions"])
def test_a_route_pattern_is_not_a_path(pattern, call):
    app = make_app()
    args = (pattern, "hi") if call == "broadcast" else (pattern,)
    with pytest.raises(ValueError, match=r"route pattern, not a path.*ws\.path"):
        getattr(app, call)(*args)


def test_one_connection_closed_for_server_and_test_client():
    assert bg_testing.WebSocketClosed is ConnectionClosed
    assert bg_testing.ConnectionClosed is ConnectionClosed
    assert issubclass(ConnectionClosed, BlazeGreenError)
    assert issubclass(bg_testing.WebSocketRejected, BlazeGreenError)
    assert issubclass(bg_testing.ServerError, BlazeGreenError)
    err = ConnectionClosed(1013, "send queue overflow")
    assert (err.code, err.reason) == (1013, "send queue overflow")
    assert "1013" in str(err) and "send queue overflow" in str(err)
    assert blaze_green.ConnectionClosed is ConnectionClosed


def test_route_decorators_return_the_function():
    app = App()

    def hello(req):
        return "hi"

    assert app.get("/hello")(hello) is hello
    assert app.post("/hello", hello) is hello
    with pytest.raises(TypeError, match="must be callable"):
        app.put("/x", "not a function")  # type: ignore[call-overload]


def test_ws_callbacks_must_be_callable():
    app = App()
    with pytest.raises(TypeError, match="must be callable"):
        app.ws("/x", on_message="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be callable"):
        app.ws("/y", before_open=3)  # type: ignore[arg-type]


def test_on_start_is_a_typed_decorator():
    app = App()

    @app.on_start
    def started():
        return None

    assert callable(started)
