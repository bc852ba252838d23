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
        assert "BTC ticker" in requests.get(server.url + "/", timeout=5).text
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
