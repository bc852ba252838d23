"""A real Flask app, as an existing project would have it, for tests/test_mount.py.

`make_flask(name, blaze_app)` builds one; mount_app.py mounts one at "/" and one at "/legacy".
"""

import atexit
import hashlib
import os
import tempfile
from pathlib import Path

import gevent.event
from flask import (
    Flask,
    jsonify,
    render_template,
    request,
    send_file,
    session,
    stream_with_context,
    url_for,
)

BIG_SIZE = 3 * 1024 * 1024 + 123  # not a multiple of any block size
_big_path = Path(tempfile.gettempdir()) / f"blaze_mount_big_{os.getpid()}.bin"


def big_file() -> Path:
    """A file of BIG_SIZE pseudo-random bytes, written once per process, removed at its exit."""
    if not _big_path.exists():
        atexit.register(_big_path.unlink, missing_ok=True)
        block = hashlib.sha256(b"blaze").digest() * 2048  # 64 KiB
        data = (block * (BIG_SIZE // len(block) + 1))[:BIG_SIZE]
        _big_path.write_bytes(data)
    return _big_path


def make_flask(name, blaze_app):
    flask_app = Flask(name, template_folder=str(Path(__file__).parent / "mount_templates"))
    flask_app.secret_key = "test-secret"
    release = gevent.event.Event()

    @flask_app.get("/")
    def index():
        return f"flask {name} index"

    @flask_app.get("/api/hello")
    def shadowed():
        return "flask shadowed by blaze"  # never reached: blaze_green's route wins

    @flask_app.get("/legacyx")
    def legacyx():
        return f"flask {name} legacyx"

    @flask_app.get("/page/<name>")
    def page(name):
        return render_template("page.html", title="Page", name=name)

    @flask_app.get("/where")
    def where():
        return jsonify(
            script_name=request.environ["SCRIPT_NAME"],
            path_info=request.environ["PATH_INFO"],
            url=url_for("page", name="x"),
            external=url_for("page", name="x", _external=True),
        )

    @flask_app.post("/session")
    def set_session():
        session["user"] = request.get_json()["user"]
        return {"ok": True}

    @flask_app.get("/session")
    def get_session():
        return {"user": session.get("user")}

    @flask_app.get("/stream")
    def stream():
        release.clear()

        def generate():
            yield "first chunk\n"
            # The test reads the first chunk, then releases us from another connection:
            # the first chunk can only have arrived if it was written before we ended.
            if not release.wait(10):
                yield "timeout\n"
                return
            yield "last chunk\n"

        return flask_app.response_class(stream_with_context(generate()), mimetype="text/plain")

    @flask_app.post("/stream/release")
    def stream_release():
        release.set()
        return "released"

    @flask_app.get("/big")
    def big():
        response = send_file(big_file(), mimetype="application/octet-stream")
        wrapper = request.environ.get("wsgi.file_wrapper")
        response.headers["X-File-Wrapper"] = f"{wrapper.__module__}.{wrapper.__qualname__}"
        return response

    @flask_app.post("/publish")
    def publish():
        # An existing view pushing a live update to the WebSocket clients of the blaze app.
        n = blaze_app.broadcast("/feed", {"from": "flask", "item": request.form["item"]})
        return {"delivered": n}

    @flask_app.post("/echo")
    def echo():
        data = request.get_data()
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    @flask_app.get("/boom")
    def boom():
        raise RuntimeError("flask view failed")

    return flask_app
