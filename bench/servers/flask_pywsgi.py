"""Bench peer (HTTP): a Flask app on gevent.pywsgi.WSGIServer (TCP_NODELAY, no access log).

python bench/servers/flask_pywsgi.py PORT
"""

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402

from _proto import port_from_argv  # noqa: E402
from flask import Flask  # noqa: E402
from gevent.pywsgi import WSGIHandler, WSGIServer  # noqa: E402

app = Flask(__name__)


@app.get("/hello")
def hello():
    return "hi"  # Flask: text/html; charset=utf-8


class NoDelayHandler(WSGIHandler):
    def handle(self):
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()


if __name__ == "__main__":
    WSGIServer(
        ("127.0.0.1", port_from_argv()), app, handler_class=NoDelayHandler, log=None, backlog=1024
    ).serve_forever()
