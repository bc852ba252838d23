"""Started as a script: `python listen_app.py PORT` serves with app.listen()."""

import sys

from blaze_green import App

app = App()


@app.get("/hello")
def hello(req):
    return "hi from listen"


if __name__ == "__main__":
    app.listen(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0, host="127.0.0.1")
