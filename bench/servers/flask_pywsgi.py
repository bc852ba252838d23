"""Bench peer (HTTP): a Flask app on gevent.pywsgi.WSGIServer (TCP_NODELAY, no access log).

python bench/servers/flask_pywsgi.py PORT
"""

from gevent import monkey

monkey.patch_all()


from _proto import serve_pywsgi_nodelay  # noqa: E402
from flask import Flask  # noqa: E402

app = Flask(__name__)


@app.get("/hello")
def hello():
    return "hi"  # Flask: text/html; charset=utf-8


if __name__ == "__main__":
    serve_pywsgi_nodelay(app)
