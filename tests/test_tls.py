"""TLS: https:// and wss:// in all three run modes (`blaze-green run`, gunicorn, app.listen).

A CA and a server certificate for 127.0.0.1 are made with trustme once per test session; the
clients (requests, the websockets client, headless Chromium) trust that CA only.
"""

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from blaze_green.testing import ServerProcess
from blaze_green.testing.util import wait_until
from blaze_green.tls import TLSConfigError, server_context

trustme = pytest.importorskip("trustme")

APPS = Path(__file__).parent / "apps"
MODES = ["run", "gunicorn", "script"]


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    paths = {
        "ca": d / "ca.pem",
        "cert": d / "cert.pem",
        "key": d / "key.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(paths["cert"]), append=True)
    cert.private_key_pem.write_to_path(str(paths["key"]))
    paths["der"] = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    return paths


@pytest.fixture
def client_ctx(certs):
    return ssl.create_default_context(cafile=str(certs["ca"]))


def tls_server(mode, certs, env=None, **kwargs):
    cert, key = str(certs["cert"]), str(certs["key"])
    if mode == "script":
        return ServerProcess("tls_app.py", mode="script", cwd=APPS, env=env, args=["0", cert, key])
    return ServerProcess(
        "tls_app:app", mode=mode, cwd=APPS, env=env, args=["--certfile", cert, "--keyfile", key]
    )


@pytest.fixture
def tls(certs):
    """tls(mode, env=None): a TLS server of tls_app, stopped after the test."""
    started = []

    def start(mode, env=None):
        server = tls_server(mode, certs, env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def connections(server, certs, path):
    return requests.get(
        server.url + "/count", params={"path": path}, verify=str(certs["ca"]), timeout=5
    ).json()["n"]


@pytest.mark.parametrize("mode", MODES)
def test_https_get_and_wss_echo_and_broadcast(mode, tls, certs, client_ctx):
    server = tls(mode)
    assert server.url.startswith("https://")
    r = requests.get(server.url + "/hello", verify=str(certs["ca"]), timeout=5)
    assert r.json() == {"hello": "tls", "scheme": "https"}
    # A client that does not trust the certificate fails its handshake: one log line (the
    # first client error from an address in a minute is the one logged at WARNING).
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.url + "/hello", timeout=5)  # the system CAs only
    server.wait_for_output(r"client 127\.0\.0\.1: TLS handshake failed", 10)
    # A plain-HTTP request to the TLS port gets a 400 saying what to do, in plain text.
    plain = requests.get(f"http://127.0.0.1:{server.port}/hello", timeout=5)
    assert plain.status_code == 400
    assert "use https://" in plain.json()["error"]
    assert "Traceback" not in server.output

    with connect(server.ws_url("/echo"), ssl=client_ctx, open_timeout=10) as ws:
        for text in ["hello", "ünïcode ✓", "x" * 70_000]:
            ws.send(text)
            assert ws.recv(timeout=10) == text
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=10) == b"\x00\x01binary"

    with contextlib.ExitStack() as stack:
        feeds = [
            stack.enter_context(connect(server.ws_url("/feed"), ssl=client_ctx, open_timeout=10))
            for _ in range(3)
        ]
        wait_until(lambda: connections(server, certs, "/feed") == 3, 10, what="3 feed sessions")
        r = requests.post(
            server.url + "/broadcast", params={"text": "news"}, verify=str(certs["ca"]), timeout=5
        )
        assert r.json() == {"reached": 3}
        assert [f.recv(timeout=10) for f in feeds] == ["news"] * 3


@pytest.mark.parametrize("mode", MODES)
def test_one_mib_message_both_directions(mode, tls, client_ctx):
    server = tls(mode)
    big_text = "".join(chr(0x41 + i % 26) for i in range(1 << 20))
    big_binary = os.urandom(1 << 20)
    with connect(server.ws_url("/echo"), ssl=client_ctx, max_size=None, open_timeout=10) as ws:
        ws.send(big_text)
        assert ws.recv(timeout=30) == big_text
        ws.send(big_binary)
        assert ws.recv(timeout=30) == big_binary


def test_server_writes_past_full_socket_buffers_intact(tls, client_ctx):
    """64 MiB from the server: its TLS writes hit want-write many times, and every byte still
    arrives in order (the session retries with the same buffer, as OpenSSL requires)."""
    server = tls("run", env={"COMPRESSION": "off"})
    count, size = 256, 256 * 1024
    with connect(server.ws_url("/flood"), ssl=client_ctx, max_size=None, open_timeout=10) as ws:
        ws.send(f"{count}:{size}")
        digest = hashlib.sha256()
        for i in range(count):
            chunk = ws.recv(timeout=30)
            assert chunk == bytes([i % 256]) * size, f"message {i} damaged"
            digest.update(chunk)
        assert ws.recv(timeout=30) == digest.hexdigest()


def test_compression_over_wss(tls, client_ctx):
    server = tls("run")
    with connect(server.ws_url("/echo"), ssl=client_ctx, open_timeout=10) as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        text = "compress me over TLS " * 5000
        ws.send(text)
        assert ws.recv(timeout=10) == text


@pytest.mark.parametrize("mode", MODES)
def test_graceful_shutdown_over_wss_closes_with_1001(mode, tls, client_ctx, certs):
    server = tls(mode)
    with connect(server.ws_url("/echo"), ssl=client_ctx, open_timeout=10) as ws:
        ws.send("before")
        assert ws.recv(timeout=10) == "before"
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=15)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert server.stop() == 0
    assert "tls-app close path=/echo code=1001" in server.output


# -- bad certificate and key files ------------------------------------------------------------


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "blaze_green", "run", "tls_app:app", "--port", "0", *args],
        cwd=APPS,
        env={k: v for k, v in os.environ.items() if k != "BLAZE_GREEN_NO_PATCH"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cli_missing_or_bad_files_exit_2_naming_the_file(certs, tmp_path):
    missing = str(tmp_path / "nope.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        (["--certfile", missing, "--keyfile", str(certs["key"])], f"certfile '{missing}' does not"),
        (["--certfile", str(certs["cert"]), "--keyfile", missing], f"keyfile '{missing}' does not"),
        (["--certfile", str(tmp_path), "--keyfile", str(certs["key"])], "is a directory"),
        (["--certfile", str(garbage), "--keyfile", str(certs["key"])], f"certfile '{garbage}'"),
        (["--certfile", str(certs["cert"]), "--keyfile", str(certs["cert"])], "keyfile"),
        (["--keyfile", str(certs["key"])], "keyfile given without certfile"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_server_context_messages(certs, tmp_path):
    unreadable = tmp_path / "locked.pem"
    unreadable.write_text("x")
    with pytest.raises(TLSConfigError, match="not both"):
        server_context(str(certs["cert"]), None, ssl.create_default_context())
    assert server_context(None, None) is None
    ctx = server_context(certs["cert"], certs["key"])
    assert ctx is not None and ctx.options & ssl.OP_NO_RENEGOTIATION
    if os.geteuid() != 0:  # root reads any file
        unreadable.chmod(0)
        with pytest.raises(TLSConfigError, match="cannot be read"):
            server_context(unreadable, certs["key"])


def test_listen_with_missing_cert_fails_naming_it(certs, tmp_path):
    missing = str(tmp_path / "absent.pem")
    proc = subprocess.run(
        [sys.executable, "tls_app.py", "0", missing, str(certs["key"])],
        cwd=APPS,
        env={k: v for k, v in os.environ.items() if k != "BLAZE_GREEN_NO_PATCH"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert f"TLSConfigError: certfile '{missing}' does not exist" in proc.stderr


# -- a browser --------------------------------------------------------------------------------


def spki_hash(der_cert: bytes) -> str:
    """base64(sha256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list takes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    public_key = x509.load_der_x509_certificate(der_cert).public_key()
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; .ci/run installs them)",
)
def test_wss_page_in_headless_chromium(tls, certs):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    server = tls("run")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # Trust exactly this server certificate (by its key's hash), not every certificate.
        f"--ignore-certificate-errors-spki-list={spki_hash(certs['der'])}",
        f"--user-data-dir={tempfile.mkdtemp(prefix='tls-chrome-')}",
    ]:
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        browser.get(server.url + "/page")
        wait_until(lambda: browser.title == "echoed", 20, what="the page's wss echo")
        text = browser.find_element("id", "log").text
        assert "got hello over wss" in text
        assert "permessage-deflate" in text  # Chromium offered it, the server accepted
    finally:
        browser.quit()


def test_overflow_on_a_slow_wss_client_ends_the_stream_cleanly(tls, client_ctx):
    """A client that stops reading: the send queue overflows and the session closes with 1013.
    On TLS the frame being written is kept whole (OpenSSL needs the same buffer again), so the
    client reads only whole, intact messages and then the close frame."""
    server = tls("run", env={"COMPRESSION": "off", "QUEUE": "8"})
    size = 64 * 1024
    with connect(server.ws_url("/flood"), ssl=client_ctx, max_size=None, open_timeout=10) as ws:
        ws.send(f"4000:{size}")  # 250 MiB: far more than the socket buffers and the queue hold
        server.wait_for_output(r"send_queue_size.*closing with 1013", 30)
        received = 0
        with pytest.raises(ConnectionClosed) as info:
            while True:
                chunk = ws.recv(timeout=30)
                assert chunk == bytes([received % 256]) * size, f"message {received} damaged"
                received += 1
    assert info.value.rcvd is not None and info.value.rcvd.code == 1013
    assert 0 < received < 4000


@pytest.mark.parametrize("mode", ["run", "gunicorn"])
def test_silent_client_is_dropped_after_header_timeout(mode, tls):
    """A connection that never sends its ClientHello is closed after header_timeout (1 s here)."""
    server = tls(mode, env={"HEADER_TIMEOUT": "1"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, not by our 10 s timeout
        assert time.monotonic() - started < 8
    server.wait_for_output(r"TLS handshake failed", 10)
