"""blaze_green app with Flask apps and a plain WSGI app mounted: tests/test_mount.py."""

from mount_flask import make_flask
from mount_raw import raw_app

from blaze_green import App

app = App(max_body_size=64 * 1024, ping_interval=None, allowed_origins="*")


@app.get("/api/hello")
def hello(req):
    return "blaze"


@app.post("/api/only-post")
def only_post(req):
    return "blaze post"


@app.get("/api/stats")
def stats(req):
    return app.stats()["http"]["requests"]


app.ws("/feed", on_message=lambda ws, msg: ws.send("echo " + msg))

app.mount("/", make_flask("root", app))
app.mount("/legacy", make_flask("legacy", app))
app.mount("/raw", raw_app)
