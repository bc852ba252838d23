"""Plain WSGI apps (no framework) for the PEP 3333 details: close(), write(), exc_info, bodies."""

import io
import itertools
import json
import os

import gevent

closed = []  # names of the responses whose close() ran


class Closing:
    """A response iterable that records its close()."""

    def __init__(self, name, chunks):
        self.name = name
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        closed.append(self.name)


def _json(start_response, value, status="200 OK"):
    body = json.dumps(value).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def raw_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/environ":
        keys = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "CONTENT_LENGTH")
        value = {k: environ.get(k) for k in keys}
        value["file_wrapper"] = environ["wsgi.file_wrapper"].__qualname__
        value["input_terminated"] = environ.get("wsgi.input_terminated")
        value["keys"] = sorted(k for k in environ if not k.startswith("HTTP_"))
        return _json(start_response, value)
    if path == "/closing":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(environ.get("QUERY_STRING") or "closing", [b"a", b"b", b"c"])
    if path == "/endless":
        # Streams until the client goes away; its close() must still run.
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def forever():
            for _ in itertools.count():
                yield b"x" * 65536
                gevent.sleep(0)

        gen = forever()
        return Closing("endless", gen)
    if path == "/closed":
        return _json(start_response, closed)
    if path == "/write":
        # The write() callable first, then the iterable (PEP 3333 allows both, in this order).
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"then ", b"returned"]
    if path == "/exc-before":
        # An error before any byte went out: start_response again with exc_info replaces it.
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            import sys

            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"sorry"]
    if path == "/exc-after":
        # An error after the headers were sent: start_response(exc_info) re-raises, and the
        # connection is closed mid-body (the client sees a truncated chunked response).
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise ValueError("too late")
        except ValueError:
            import sys

            start_response(
                "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"never"]
    if path == "/raise":
        raise RuntimeError("raw app failed")
    if path.startswith("/file"):
        return file_app(environ, start_response)
    if path == "/lazy":
        # A generator app: start_response is only called when the server iterates.
        return lazy_app(environ, start_response)
    if path == "/body":
        data = environ["wsgi.input"].read()
        return _json(start_response, {"size": len(data)})
    if path == "/body-lines":
        lines = list(environ["wsgi.input"])
        return _json(start_response, {"lines": len(lines), "size": sum(map(len, lines))})
    return _json(start_response, {"error": "raw app: not found"}, "404 Not Found")


def lazy_app(environ, start_response):
    start_response("201 Created", [("Content-Type", "text/plain")])
    yield b"lazy "
    yield b"body"


def file_app(environ, start_response):
    """Files through wsgi.file_wrapper: this module's source from an offset, a Content-Length
    longer than the file, an in-memory file (no descriptor)."""
    path = environ["PATH_INFO"]
    if path == "/file-memory":
        f = io.BytesIO(b"in memory " * 1000)
        size = 10_000
    else:
        f = open(__file__, "rb")  # noqa: SIM115 - the server closes it through the wrapper
        offset = int(environ.get("QUERY_STRING") or 0)
        f.seek(offset)
        size = os.fstat(f.fileno()).st_size - offset
        if path == "/file-short":
            size += 100  # declares more than there is: the server must cut and close
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
    )
    return environ["wsgi.file_wrapper"](f, 8192)
