"""Bench peer (HTTP): a bare WSGI function on gevent.pywsgi.WSGIServer.

python bench/servers/wsgi_bare.py PORT
TCP_NODELAY on accepted sockets: pywsgi writes headers and body in two send calls,
so without it keep-alive clients hit Nagle + delayed ACK (~40 ms per request).
"""

from gevent import monkey

monkey.patch_all()


from _proto import serve_pywsgi_nodelay  # noqa: E402

BODY = b"hi"
HEADERS = [("Content-Type", "text/html"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hello":
        start_response("200 OK", HEADERS)
        return [BODY]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


if __name__ == "__main__":
    serve_pywsgi_nodelay(app)
