"""The examples, run as users run them: the seed feed and the chat room (in a real browser)."""

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect

from blaze_green.testing import ServerProcess, free_port, wait_until

EXAMPLES = Path(__file__).parent.parent / "examples"
WORKER = "blaze_green.worker.GeventWebSocketWorker"


def feed_server(mode):
    if mode == "script":
        port = free_port()
        return ServerProcess("feed.py", mode="script", cwd=EXAMPLES, env={"PORT": str(port)})
    if mode == "gunicorn":
        return ServerProcess("feed:app", mode="gunicorn", workers=1, cwd=EXAMPLES)
    return ServerProcess("feed:app", cwd=EXAMPLES)


@pytest.mark.parametrize("mode", ["script", "run", "gunicorn"])
def test_feed_example(mode):
    with feed_server(mode) as server:
        page = requests.get(server.url + "/", timeout=5).text
        assert "BTC ticker" in page and '<script src="/static/feed.js">' in page
        js = requests.get(server.url + "/static/feed.js", timeout=5)
        assert js.status_code == 200 and "new WebSocket" in js.text
        assert js.headers["Content-Type"] == "text/javascript; charset=utf-8"
        with connect(server.ws_url("/feed"), open_timeout=5) as ws:
            tick = json.loads(ws.recv(timeout=5))  # the ticker task, an Update model
            assert tick["type"] == "ticker" and isinstance(tick["value"], float)
            ws.send("hello")
            while (msg := ws.recv(timeout=5)) != "Echo: hello":
                assert json.loads(msg)["type"] == "ticker"
        with connect(server.ws_url("/heartbeat"), open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5)) == {"status": "alive"}
        assert server.stop(signal.SIGTERM) == 0


def chat_server(mode):
    if mode == "gunicorn":
        return ServerProcess("chat:app", mode="gunicorn", workers=1, cwd=EXAMPLES)
    return ServerProcess("chat:app", cwd=EXAMPLES)


@pytest.mark.parametrize("mode", ["run", "gunicorn"])
def test_chat_example_with_websocket_clients(mode):
    with chat_server(mode) as server:
        r = requests.get(server.url + "/", timeout=5)
        assert r.status_code == 200 and "<h1>Chat</h1>" in r.text
        js = requests.get(server.url + "/static/chat.js", timeout=5)
        assert js.status_code == 200 and "/chat?name=" in js.text
        with connect(server.ws_url("/chat?name=ann"), open_timeout=5) as ann:
            assert json.loads(ann.recv(timeout=5)) == {"type": "join", "name": "ann", "count": 1}
            with connect(server.ws_url("/chat?name=bob"), open_timeout=5) as bob:
                joined = {"type": "join", "name": "bob", "count": 2}
                assert json.loads(ann.recv(timeout=5)) == joined
                assert json.loads(bob.recv(timeout=5)) == joined
                bob.send("hi all")
                said = {"type": "message", "name": "bob", "text": "hi all"}
                assert json.loads(ann.recv(timeout=5)) == said
                assert json.loads(bob.recv(timeout=5)) == said
            assert json.loads(ann.recv(timeout=5)) == {"type": "leave", "name": "bob", "count": 1}
        r = requests.get(
            server.url + "/chat",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            },
            timeout=5,
        )
        assert r.status_code == 400 and "pick a name" in r.json()["error"]


def login_server(mode="run"):
    env = {"LOGIN_SECRET": "test-secret"}
    if mode == "gunicorn":
        return ServerProcess("login:app", mode="gunicorn", workers=2, cwd=EXAMPLES, env=env)
    return ServerProcess("login:app", cwd=EXAMPLES, env=env)


def _ws_status(url, cookie=None):
    from websockets.exceptions import InvalidStatus

    headers = {"Cookie": cookie} if cookie else None
    try:
        with connect(url, open_timeout=5, additional_headers=headers) as ws:
            return 101, json.loads(ws.recv(timeout=5))
    except InvalidStatus as exc:
        return exc.response.status_code, json.loads(exc.response.body)


@pytest.mark.parametrize("mode", ["run", "gunicorn"])
def test_login_example_cookie_gates_the_websocket(mode):
    with login_server(mode) as server:
        url = server.ws_url("/room")
        status, body = _ws_status(url)
        assert status == 401 and "log in first" in body["error"]
        bad = requests.post(server.url + "/login", data={"user": "ann", "password": "x"}, timeout=5)
        assert bad.status_code == 401 and "Set-Cookie" not in bad.headers
        r = requests.post(
            server.url + "/login", data={"user": "ann", "password": "wonderland"}, timeout=5
        )
        assert r.status_code == 200 and r.json() == {"user": "ann"}
        token = r.cookies["session"]
        assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Lax" in r.headers["Set-Cookie"]
        # a signed cookie: any worker verifies it (gunicorn: two processes, one secret)
        for _ in range(3):
            assert _ws_status(url, f"session={token}") == (101, {"type": "welcome", "user": "ann"})
        from itsdangerous import URLSafeTimedSerializer

        # "bob", signed with another key, and ann's token with its payload changed
        forged = URLSafeTimedSerializer("not-the-secret", salt="blaze_green-login").dumps("bob")
        tampered = "Ym9i" + token[token.index(".") :]
        status, body = _ws_status(url, f"session={tampered}")
        assert status == 401 and "invalid or expired" in body["error"]
        status, body = _ws_status(url, f"session={forged}")
        assert status == 401 and "invalid or expired" in body["error"]
        status, _ = _ws_status(url, "session=bob")
        assert status == 401
        # a page on another site cannot use the cookie: same-origin policy, 403 before the upgrade
        from websockets.exceptions import InvalidStatus

        with pytest.raises(InvalidStatus) as refused:
            connect(
                url,
                open_timeout=5,
                origin="http://evil.example",
                additional_headers={"Cookie": f"session={token}"},
            )
        assert refused.value.response.status_code == 403
        assert requests.get(server.url + "/me", cookies={"session": token}, timeout=5).json() == {
            "user": "ann"
        }
        out = requests.post(server.url + "/logout", timeout=5)
        assert out.headers["Set-Cookie"].startswith("session=; Max-Age=0")


def test_login_example_with_the_test_client():
    from blaze_green.testing import TestClient

    # the snippet in docs/http.md, "The test client carries cookies"
    with TestClient("login:app", cwd=EXAMPLES) as client:
        client.post("/login", data={"user": "ann", "password": "wonderland"})
        with client.websocket_connect("/room") as ws:
            assert ws.receive_json() == {"type": "welcome", "user": "ann"}


def _chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chat-chrome-')}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@pytest.mark.browser
@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; .ci/run installs them)",
)
def test_chat_page_in_headless_chromium():
    from selenium.webdriver.common.by import By

    with chat_server("run") as server:
        browsers = [_chrome(), _chrome()]
        try:
            for browser, name in zip(browsers, ("ann", "bob"), strict=True):
                browser.get(server.url + "/")
                browser.find_element(By.ID, "name").send_keys(name)
                browser.find_element(By.CSS_SELECTOR, "#join button").click()
                wait_until(lambda b=browser: b.find_element(By.ID, "room").is_displayed(), 15)
            ann, bob = browsers
            # Chromium offered permessage-deflate and the server accepted it.
            for browser in browsers:
                assert "permessage-deflate" in browser.execute_script("return ws.extensions")
            wait_until(lambda: "bob joined" in ann.find_element(By.ID, "log").text, 15)
            long_text = "a long line, compressed on the way in and out " * 8  # over the threshold
            ann.find_element(By.ID, "text").send_keys(long_text)
            ann.find_element(By.CSS_SELECTOR, "#send button").click()
            ann.find_element(By.ID, "text").send_keys("hello from a real browser")
            ann.find_element(By.CSS_SELECTOR, "#send button").click()

            def lines(browser):
                return [
                    (m.find_element(By.TAG_NAME, "b").text, m.text)
                    for m in browser.find_elements(By.CSS_SELECTOR, "#log .msg")
                ]

            for browser in browsers:
                for expected in (long_text.strip(), "hello from a real browser"):
                    wait_until(
                        lambda b=browser, e=expected: any(
                            who == "ann" and text.endswith(e) for who, text in lines(b)
                        ),
                        15,
                        what="the messages in both pages",
                    )
        finally:
            for browser in browsers:
                browser.quit()


@pytest.mark.browser
@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; .ci/run installs them)",
)
def test_login_page_in_headless_chromium():
    from selenium.webdriver.common.by import By

    with login_server() as server:
        browser = _chrome()
        try:
            browser.get(server.url + "/")
            # before logging in, the socket is refused (401 before the upgrade: code 1006)
            browser.execute_script(
                "window.early = new WebSocket('ws://' + location.host + '/room');"
                "early.onclose = (e) => { window.earlyClose = e.code; };"
            )
            wait_until(lambda: browser.execute_script("return window.earlyClose"), 15)
            assert browser.execute_script("return window.earlyClose") == 1006
            browser.find_element(By.ID, "user").send_keys("ann")
            browser.find_element(By.ID, "password").send_keys("wonderland")
            browser.find_element(By.CSS_SELECTOR, "#login button").click()

            def log():
                return browser.find_element(By.ID, "log").text

            wait_until(lambda: "welcome ann" in log(), 15, what="the welcome message")
            # the cookie is HttpOnly: the page's script cannot read it
            assert "session" not in browser.execute_script("return document.cookie")
            browser.find_element(By.ID, "text").send_keys("hello from chromium")
            browser.find_element(By.CSS_SELECTOR, "#send button").click()
            wait_until(lambda: "ann: hello from chromium" in log(), 15, what="the broadcast")
        finally:
            browser.quit()
