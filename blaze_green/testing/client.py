"""`TestClient`: run an app for a test and talk to it over HTTP and WebSocket.

```python
from blaze_green.testing import TestClient

with TestClient(app) as client:                       # in this process, on a free port
    assert client.get("/hello").text == "hi"
    with client.websocket_connect("/feed") as ws:
        ws.send("ping")
        assert ws.receive() == "Echo: ping"

with TestClient("myapp:app", cwd="src") as client:    # `blaze-green run` in a child process
    ...
```
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import urllib.request
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .appserver import AppServer
from .http import urllib_request
from .process import ServerProcess
from .websocket import WebSocketSession, open_websocket

if TYPE_CHECKING:
    from ..app import App

__all__ = ["TestClient"]


class TestClient:
    """Run an app for a test and talk to it over HTTP and WebSocket.

    `target` is an `App` (served in this process by `AppServer`) or a `"module:app"` string
    (served in a child process by `ServerProcess`; `mode`, `cwd`, `env`, `args` and other
    keyword arguments go to it). Use it as a context manager, or `start()`/`stop()`.

    - `.url`, `.ws_url(path)`, `.server` (the AppServer or ServerProcess), `.app` (in-process).
    - `.get/.post/.put/.patch/.delete/.head/.options(path, **kwargs)` and `.request(method,
      path, **kwargs)`: `path` is relative to `.url`. With `requests` installed they are
      `requests.Session` calls (any of its keyword arguments) returning `requests.Response`;
      without it a urllib fallback takes `params`, `data`, `json`, `headers`, `timeout`,
      `allow_redirects` and returns an `HTTPResponse` with the same common attributes.
    - `.websocket_connect(path, headers=None, subprotocols=None)` → `WebSocketSession`; a
      refused handshake raises `WebSocketRejected` (`.status`, `.body`, `.json()`).
    - `.cookies`: the client's cookie jar (an `http.cookiejar.CookieJar`; with `requests`, the
      session's). Cookies set by its HTTP responses go with its later HTTP requests and its
      WebSocket handshakes (unless `headers` has a Cookie of its own), as a browser's would.
    `stop()` closes the sessions still open, then stops the server.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        target: App | str,
        *,
        mode: str = "run",
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
        host: str = "127.0.0.1",
        timeout: float = 10.0,
        use_requests: bool | None = None,
        **server_options: Any,
    ) -> None:
        from ..app import App

        self.timeout = timeout
        self.app: App | None = None
        self.server: AppServer | ServerProcess
        if isinstance(target, App):
            if cwd is not None or env is not None or tuple(args) or mode != "run":
                raise TypeError("mode, cwd, env and args are for a 'module:app' target")
            self.app = target
            self.server = AppServer(target, host=host, **server_options)
        elif isinstance(target, str):
            self.server = ServerProcess(
                target, mode=mode, cwd=cwd, env=env, args=args, host=host, **server_options
            )
        else:
            raise TypeError(f"TestClient needs an App or a 'module:app' string, not {target!r}")
        if use_requests is None:
            try:
                import requests  # noqa: F401
            except ImportError:
                use_requests = False
            else:
                use_requests = True
        self._use_requests = use_requests
        self._http: Any = None
        self._jar: http.cookiejar.CookieJar = http.cookiejar.CookieJar()
        self._sessions: weakref.WeakSet[WebSocketSession] = weakref.WeakSet()
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> TestClient:
        """Start the server (once); returns the client."""
        if not self._started:
            self.server.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Close the sessions still open, then stop the server."""
        if not self._started:
            return
        self._started = False
        try:
            for ws in list(self._sessions):
                with contextlib.suppress(Exception):
                    ws.close(timeout=2.0)
            if self._http is not None:
                self._jar = http.cookiejar.CookieJar()
                for cookie in self._http.cookies:
                    self._jar.set_cookie(cookie)  # kept for a restart of the client
                self._http.close()
                self._http = None
        finally:
            self.server.stop()

    close = stop

    def __enter__(self) -> TestClient:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The host the server listens on."""
        return self.server.host

    @property
    def port(self) -> int:
        """The port the server listens on (a free one, picked at start)."""
        port = self.server.port
        if port is None:
            raise RuntimeError("the server is not running: start() the client first")
        return port

    @property
    def url(self) -> str:
        """`http://host:port` of the server."""
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        """`ws://host:port` + `path`."""
        return f"ws://{self.host}:{self.port}{path}"

    # -- cookies ----------------------------------------------------------------------------

    @property
    def cookies(self) -> http.cookiejar.CookieJar:
        """The cookies this client carries (set by the server's responses, or by the test)."""
        return self._session().cookies if self._use_requests else self._jar

    def _session(self) -> Any:
        if self._http is None:
            import requests

            self._http = requests.Session()
            self._http.cookies.update(self._jar)
        return self._http

    def cookie_header(self, path: str = "/") -> str | None:
        """The Cookie header this client would send with a request to `path`."""
        probe = urllib.request.Request(self.url + path)
        self.cookies.add_cookie_header(probe)
        return probe.get_header("Cookie")

    # -- HTTP -----------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """An HTTP request to `path` (relative to `.url`); see the class for the keywords."""
        url = path if "://" in path else self.url + path
        kwargs.setdefault("timeout", self.timeout)
        if self._use_requests:
            return self._session().request(method, url, **kwargs)
        return urllib_request(method, url, cookies=self._jar, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        """`request("GET", path, **kwargs)`."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        """`request("POST", path, **kwargs)`."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        """`request("PUT", path, **kwargs)`."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        """`request("PATCH", path, **kwargs)`."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        """`request("DELETE", path, **kwargs)`."""
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Any:
        """`request("HEAD", path, **kwargs)`."""
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> Any:
        """`request("OPTIONS", path, **kwargs)`."""
        return self.request("OPTIONS", path, **kwargs)

    # -- WebSocket ------------------------------------------------------------------------------

    def websocket_connect(
        self,
        path: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        subprotocols: Iterable[str] | None = None,
        *,
        timeout: float | None = None,
        compression: bool = False,
    ) -> WebSocketSession:
        """Open a WebSocket session on `path` (query string allowed); `compression=True`
        offers permessage-deflate as browsers do (`ws.compression` says if it was accepted).
        The client's cookies for `path` are sent, unless `headers` has a Cookie."""
        items = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        cookie = self.cookie_header(path)
        if cookie and not any(name.lower() == "cookie" for name, _ in items):
            items.append(("Cookie", cookie))
        headers = items
        sock, response_headers, initial = open_websocket(
            self.host,
            self.port,
            path,
            headers=headers,
            subprotocols=subprotocols,
            timeout=self.timeout if timeout is None else timeout,
            compression=compression,
        )
        ws = WebSocketSession(sock, path, response_headers, initial)
        self._sessions.add(ws)
        return ws
