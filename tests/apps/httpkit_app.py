"""Static files, cookies, forms and uploads (tests/test_httpkit.py). STATIC_DIR names the
directory served at /static (and at /static/deeper, to test the longest prefix)."""

import datetime
import hashlib
import os

from blaze_green import App, HTTPError, Response

app = App(max_body_size=2 * 1024 * 1024, body_timeout=float(os.environ.get("BODY_TIMEOUT", "30")))
app.static("/static", os.environ["STATIC_DIR"])
if os.environ.get("STATIC_DEEPER"):
    app.static("/static/deeper", os.environ["STATIC_DEEPER"])

KEPT = []  # uploads a handler held on to after its request ended


@app.get("/static/own")
def own_route(req):
    return "our own route"


app.ws("/static/live", on_open=lambda ws: ws.send("live"))  # a WebSocket path under the prefix


@app.get("/cookies")
def cookies(req):
    return dict(req.cookies)


@app.get("/set-cookies")
def set_cookies(req):
    resp = Response("set")
    resp.set_cookie("plain", "1")
    resp.set_cookie(
        "session",
        "abc",
        max_age=3600,
        path="/",
        secure=True,
        httponly=True,
        samesite="Lax",
    )
    resp.set_cookie(
        "dated", "x", expires=datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    )
    resp.set_cookie("epoch", "y", expires=0, domain="127.0.0.1", path="/cookies")
    return resp


@app.get("/delete-cookie")
def delete_cookie(req):
    resp = Response("gone")
    resp.delete_cookie("plain")
    return resp


@app.get("/bad-cookie")
def bad_cookie(req):
    resp = Response("never")
    resp.set_cookie("bad", req.query.get("value", "a;b"))
    return resp


@app.get("/naive-expires")
def naive_expires(req):
    resp = Response("never")
    resp.set_cookie("n", "1", expires=datetime.datetime(2030, 1, 1))
    return resp


def describe(upload):
    data = upload.read()
    return {
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


@app.post("/form")
def form(req):
    return {
        "form": {name: req.form.getlist(name) for name in req.form},
        "files": {name: [describe(f) for f in req.files.getlist(name)] for name in req.files},
    }


@app.post("/data-then-form")
def data_then_form(req):
    raw = req.data
    return {"data": len(raw), "form": dict(req.form), "files": sorted(req.files)}


@app.post("/form-then-data")
def form_then_data(req):
    dict(req.form)
    try:
        _ = req.data
    except RuntimeError as exc:
        return {"error": str(exc)}
    return {"error": None}


@app.post("/json-or-form")
def json_or_form(req):
    return {"form": dict(req.form), "json": req.json}


@app.post("/save")
def save(req):
    target = os.path.join(req.query["dir"], "saved.bin")
    written = req.files["file"].save(target)
    return {"written": written, "path": target}


@app.post("/keep")
def keep(req):
    upload = req.files["file"]
    KEPT.append(upload)
    return {"spooled": not isinstance(upload.stream, __import__("io").BytesIO)}


@app.get("/kept")
def kept(req):
    return {"closed": [u.closed for u in KEPT]}


# -- a session cookie carried by the test client into a WebSocket handshake ----------------


@app.post("/login")
def login(req):
    resp = Response({"user": req.form["user"]})
    resp.set_cookie("user", req.form["user"], httponly=True, samesite="Lax")
    return resp


def who(req):
    user = req.cookies.get("user")
    if not user:
        raise HTTPError(401, "log in first: POST /login")
    return user


app.ws("/me", on_open=lambda ws: ws.send({"user": ws.user_data}), before_open=who)
