"""blaze_green app with a Django project mounted at /dj: tests/test_mount.py."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mount_django.settings")
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402

from blaze_green import App  # noqa: E402

app = App(ping_interval=None, allowed_origins="*")


@app.get("/api/hello")
def hello(req):
    return "blaze"


app.ws("/feed")
app.mount("/dj", get_wsgi_application())
