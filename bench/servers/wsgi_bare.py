"""Bench peer (HTTP): a bare WSGI function on gevent.pywsgi.WSGIServer.

python bench/servers/wsgi_bare.py PORT
TCP_NODELAY on accepted sockets: pywsgi writes headers and body in two send calls,
so without it keep-alive clients hit Nagle + delayed ACK (~40 ms per request).
"""

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402

from _proto import port_from_argv  # noqa: E402
from gevent.pywsgi import WSGIHandler, WSGIServer  # noqa: E402

BODY = b"hi"
HEADERS = [("Content-Type", "text/html"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hello":
        start_response("200 OK", HEADERS)
        return [BODY]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


class NoDelayHandler(WSGIHandler):
    def handle(self):
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()


if __name__ == "__main__":
    WSGIServer(
        ("127.0.0.1", port_from_argv()), app, handler_class=NoDelayHandler, log=None, backlog=1024
    ).serve_forever()
