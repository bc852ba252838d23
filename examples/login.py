"""Log in with a form, keep the session in a signed cookie, and let only logged-in users open
the WebSocket. The recipe of docs/http.md, "Login: a signed cookie for the WebSocket".

    python examples/login.py          # then open http://127.0.0.1:8080/ (ann / wonderland)

- POST /login (a form: user, password) checks the password and sets the cookie `session`: the
  user name signed with itsdangerous (tamper-proof, not secret), HttpOnly, SameSite=Lax, valid
  for a day (the signature carries its time, so an old cookie fails even if a browser kept it).
- `before_open` on /room reads that cookie: no cookie, a bad signature or an old one → 401
  before the upgrade; a good one returns the user name, which becomes `ws.user_data`.
- The page (/) and its script (/static/login.js, through app.static) log in with fetch() and
  then open the socket: the browser sends the cookie with the handshake by itself.

Behind HTTPS, add secure=True to set_cookie. LOGIN_SECRET sets the signing key (a random one
per process otherwise: sessions then end with the process, and gunicorn workers disagree).
"""

# ruff: noqa: I001 - blaze_green comes first: importing it monkey-patches the standard library.
from blaze_green import App, HTTPError, Json, Response

import hmac
import logging
import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

app = App()
app.static("/static", Path(__file__).parent / "static")

SESSION_COOKIE = "session"
SESSION_SECONDS = 24 * 3600
signer = URLSafeTimedSerializer(
    os.environ.get("LOGIN_SECRET") or secrets.token_hex(32), salt="blaze_green-login"
)
# A demo user table; a real app checks a password hash (e.g. argon2) from its database.
USERS = {"ann": "wonderland", "bob": "builder"}


@app.post("/login")
def login(req):
    user = req.form.get("user", "")
    password = req.form.get("password", "")
    expected = USERS.get(user)
    if expected is None or not hmac.compare_digest(expected, password):
        raise HTTPError(401, "wrong user name or password")
    resp = Response({"user": user})
    resp.set_cookie(
        SESSION_COOKIE,
        signer.dumps(user),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Lax",
    )
    return resp


@app.post("/logout")
def logout(req):
    resp = Response({"user": None})
    resp.delete_cookie(SESSION_COOKIE)
    return resp


def current_user(req):
    """The signed-in user's name; 401 without a valid session cookie."""
    token = req.cookies.get(SESSION_COOKIE)
    if not token:
        raise HTTPError(401, "log in first: POST /login with user and password")
    try:
        return signer.loads(token, max_age=SESSION_SECONDS)
    except BadSignature:  # also SignatureExpired
        raise HTTPError(401, "your session is invalid or expired: log in again") from None


@app.get("/me")
def me(req):
    return {"user": current_user(req)}


def on_open(ws):
    ws.send(Json({"type": "welcome", "user": ws.user_data}))


def on_message(ws, msg):
    if isinstance(msg, str) and msg.strip():
        app.broadcast("/room", Json({"type": "message", "user": ws.user_data, "text": msg[:500]}))


app.ws("/room", on_open=on_open, on_message=on_message, before_open=current_user)

PAGE = """<!doctype html>
<meta charset="utf-8"><title>blaze_green login</title>
<style>body{font:15px system-ui;margin:2em;max-width:40em} #log div{margin:.2em 0}</style>
<h1>Log in</h1>
<form id="login"><input id="user" placeholder="user" autocomplete="username">
<input id="password" type="password" placeholder="password" autocomplete="current-password">
<button>Log in</button></form>
<p id="status"></p>
<form id="send" hidden><input id="text" placeholder="message"><button>Send</button></form>
<div id="log"></div>
<script src="/static/login.js"></script>
"""


@app.get("/")
def index(req):
    return PAGE


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.listen(port=int(os.environ.get("PORT", "8080")), host=os.environ.get("HOST", "127.0.0.1"))
