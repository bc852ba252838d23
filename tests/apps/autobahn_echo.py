"""Echo app for the Autobahn|Testsuite fuzzingclient (.ci/autobahn.sh runs it as
`python -m blaze_green run autobahn_echo:app --port 0` from tests/apps).

ws /echo sends every message back as it came: text as text, binary as binary. Messages of up
to 16 MiB are accepted (the 9.* cases send up to 16 MiB), and the server sends no pings of its
own (ping_interval None), which would otherwise show up in the cases' expected events.
Fragments per message are not limited (max_fragments None): 9.3.1 and 9.4.1 send a 4 MiB
message in 64-byte frames (65,536 of them).
"""

from __future__ import annotations

from typing import Any

from blaze_green import App
from blaze_green.ws.session import WebSocket

app = App(max_message_size=16 * 1024 * 1024, ping_interval=None, max_fragments=None)


def echo(ws: WebSocket, message: Any) -> None:
    ws.send(message)  # str -> text frame, bytes -> binary frame


app.ws("/echo", on_message=echo)
