"""Run modes: app.listen, blaze-green run, python -m blaze_green, gunicorn; patching; signals."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from blaze_green.testing import ServerProcess

APPS = Path(__file__).parent / "apps"


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "BLAZE_GREEN_NO_PATCH"}
    env["PYTHONPATH"] = str(APPS)
    env.update(extra)
    return env


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_listen_serves_and_stops_gracefully(sig):
    with ServerProcess("listen_app.py", mode="script", cwd=APPS, args=["0"]) as server:
        assert requests.get(server.url + "/hello", timeout=5).text == "hi from listen"
        assert server.stop(sig) == 0
    assert "blaze_green stopped" in server.output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_run_and_signals(sig):
    with ServerProcess("http_app:app", cwd=APPS) as server:
        assert requests.get(server.url + "/hello", timeout=5).text == "hi"
        assert server.stop(sig) == 0


def test_console_script_with_access_log():
    script = Path(sys.executable).parent / "blaze-green"
    assert script.exists(), "the blaze-green console script is installed with the package"
    server = ServerProcess("http_app:app", cwd=APPS, args=["--access-log"])
    server.command = lambda: [str(script), "run", "http_app:app", "--port", "0", "--access-log"]
    with server:
        assert requests.get(server.url + "/hello?x=1", timeout=5).status_code == 200
        server.wait_for_output(r'"GET /hello\?x=1 HTTP/1.1" 200 \d+ ')


def test_no_access_log_by_default():
    with ServerProcess("http_app:app", cwd=APPS) as server:
        requests.get(server.url + "/hello", timeout=5)
        requests.get(server.url + "/boom", timeout=5)
        server.wait_for_output("kaboom")  # the error log goes on
        assert '"GET /hello' not in server.output


def test_cli_bad_target_exits_2_with_message():
    for target, message in [
        ("no_such_module:app", "cannot import 'no_such_module'"),
        ("http_app:nope", "has no attribute 'nope'"),
        ("http_app:Update", "not a blaze_green.App"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "blaze_green", "run", target, "--port", "0"],
            cwd=APPS,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr


def test_refuses_to_run_unpatched():
    proc = subprocess.run(
        [sys.executable, "listen_app.py", "0"],
        cwd=APPS,
        env=child_env(BLAZE_GREEN_NO_PATCH="1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "needs gevent's monkey patching" in proc.stderr


def test_warns_when_socket_imported_before_patching():
    code = "import ssl, socket, threading\nimport blaze_green\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert "PatchWarning" in proc.stderr
    assert "ssl, socket, threading imported before gevent's monkey patching" in proc.stderr
    clean = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", "import blaze_green, socket"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert clean.returncode == 0 and "PatchWarning" not in clean.stderr, clean.stderr


def test_import_patches_first():
    code = (
        "import blaze_green, socket, threading, time\n"
        "from gevent import monkey\n"
        "assert monkey.is_module_patched('socket') and monkey.is_module_patched('threading')\n"
        "assert time.sleep.__module__.startswith('gevent')\n"
        "print('patched')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=30
    )
    assert proc.stdout.strip() == "patched", proc.stderr


def test_gunicorn_two_workers_keep_access_log_and_environ():
    server = ServerProcess(
        "http_app:app",
        mode="gunicorn",
        workers=2,
        cwd=APPS,
        args=["--access-logfile", "-"],
    )
    with server:
        pids = set()
        for _ in range(20):
            r = requests.get(server.url + "/environ?a=1", timeout=5)
            assert r.json() == {"raw_uri": "/environ?a=1", "has_gunicorn_sock": True}
        assert requests.get(server.url + "/hello", timeout=5).text == "hi"
        server.wait_for_output(r'"GET /hello HTTP/1.1" 200 ')
        pids = set(map(int, __import__("re").findall(r"worker (\d+) serving", server.output)))
        assert len(pids) == 2
        assert server.stop(signal.SIGTERM) == 0


def test_gunicorn_stops_on_sigint():
    with ServerProcess("http_app:app", mode="gunicorn", workers=1, cwd=APPS) as server:
        assert requests.get(server.url + "/hello", timeout=5).text == "hi"
        assert server.stop(signal.SIGINT) == 0


def test_debug_mode_names_code_that_blocks_the_hub():
    with ServerProcess("http_app:app", cwd=APPS, args=["--debug"]) as server:
        server.wait_for_output(r"reporting greenlets that block the hub")
        assert requests.get(server.url + "/spin", timeout=10).status_code == 200
        server.wait_for_output(r"appears to be blocked[\s\S]*http_app\.py.*in spin", timeout=15)
