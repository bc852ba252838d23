"""`blaze-green run --reload`: a code change restarts the server (sessions get 1012), a syntax
error is logged without ending the dev server, the next good save serves again."""

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from blaze_green.testing import ServerProcess
from blaze_green.testing.util import wait_until

pytest.importorskip("watchfiles")

APP = """
from blaze_green import App

app = App(ping_interval=None)
VERSION = "{version}"


@app.get("/version")
def version(req):
    return VERSION


def on_message(ws, msg):
    ws.send(VERSION + ":" + msg)


app.ws("/echo", on_message=on_message)
"""


def write_app(path, version, broken=False):
    text = APP.format(version=version)
    if broken:
        text += "\ndef broken(:\n"
    path.write_text(text)


def version_is(server, expected):
    def check():
        try:
            return requests.get(server.url + "/version", timeout=5).text == expected
        except requests.RequestException:
            return False

    return check


@pytest.fixture
def reloading(tmp_path):
    write_app(tmp_path / "devapp.py", "one")
    server = ServerProcess("devapp:app", cwd=tmp_path, args=["--reload"]).start()
    yield server, tmp_path / "devapp.py"
    server.stop()


def test_change_restarts_with_1012_and_syntax_error_keeps_supervisor(reloading):
    server, source = reloading
    wait_until(version_is(server, "one"), 30, what="the first server")
    with connect(server.ws_url("/echo"), open_timeout=10) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "one:hi"
        write_app(source, "two")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=30)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1012
    server.wait_for_output(r"changed: devapp\.py; restarting", 10)
    wait_until(version_is(server, "two"), 30, what="the restarted server")
    with connect(server.ws_url("/echo"), open_timeout=10) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "two:hi"

    write_app(source, "three", broken=True)
    server.wait_for_output(r"SyntaxError", 30)
    server.wait_for_output(r"the server exited with code 1 .*waiting for a change", 30)
    assert server.proc is not None and server.proc.poll() is None, "the supervisor goes on"

    write_app(source, "three")
    wait_until(version_is(server, "three"), 30, what="the server after the fix")
    assert server.stop(signal.SIGTERM) == 0
    assert "reloader stopped" in server.output


def test_sigint_stops_child_and_supervisor_cleanly(reloading):
    server, _ = reloading
    wait_until(version_is(server, "one"), 30, what="the first server")
    with connect(server.ws_url("/echo"), open_timeout=10) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "one:hi"
        assert server.proc is not None
        server.proc.send_signal(signal.SIGINT)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=30)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert server.stop() == 0
    assert "reloader stopped" in server.output
    assert "Traceback" not in server.output


def test_reload_with_unknown_module_exits_2(tmp_path):
    server = ServerProcess("nosuchmodule:app", cwd=tmp_path, args=["--reload"])
    with pytest.raises(Exception, match="exited with 2"):
        server.start()
    assert "cannot find module 'nosuchmodule'" in server.output


def test_sighup_without_reload_closes_sessions_with_1012(tmp_path):
    """What the supervisor asks of its child, asked of a plain `blaze-green run` server."""
    write_app(tmp_path / "devapp.py", "one")
    with ServerProcess("devapp:app", cwd=tmp_path) as server:
        with connect(server.ws_url("/echo"), open_timeout=10) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "one:hi"
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=30)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1012
        assert server.stop() == 0
    assert "received SIGHUP: restarting" in server.output


def test_reload_serves_tls(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    write_app(tmp_path / "devapp.py", "one")
    args = ["--reload", "--certfile", "cert.pem", "--keyfile", "key.pem"]
    with ServerProcess("devapp:app", cwd=tmp_path, args=args) as server:
        assert server.url.startswith("https://")
        ca_file = str(tmp_path / "ca.pem")
        wait_until(
            lambda: requests.get(server.url + "/version", verify=ca_file, timeout=5).text == "one",
            30,
            what="the https server",
        )
        write_app(tmp_path / "devapp.py", "two")

        def serves_two():
            try:
                return requests.get(server.url + "/version", verify=ca_file, timeout=5).text
            except requests.RequestException:
                return False

        wait_until(lambda: serves_two() == "two", 30, what="the restarted https server")
        assert server.stop() == 0


def test_reload_on_a_port_in_use_exits_2(tmp_path):
    write_app(tmp_path / "devapp.py", "one")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "blaze_green", "run", "devapp:app", "--reload"]
            + ["--port", str(port)],
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k != "BLAZE_GREEN_NO_PATCH"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in proc.stderr
