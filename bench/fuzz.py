"""Coverage-guided fuzzing (atheris, libFuzzer) of what a client feeds the server directly.

    python -m bench.fuzz TARGET [-max_total_time=SECONDS] [-rss_limit_mb=MB] [libFuzzer flags]
    python -m bench.fuzz all --seconds 60        # every target in turn, a child process each

Targets (the documented errors are the only exceptions allowed; anything else, a hang past
libFuzzer's -timeout, or memory past -rss_limit_mb is a crash that libFuzzer reports with the
input that caused it, saved as crash-*):
- frames: FrameParser (server side: masked frames, permessage-deflate negotiated or not,
  small message and fragment limits) fed the input split at points the input chooses;
  allowed: ProtocolError with 1002, 1007 or 1009.
- headers: RequestHeaders on the input as a header block; it never raises (it reports 400,
  431 or 0 in `.code`), and what it keeps has no CR, LF or NUL.
- handshake: validate(), select_deflate(), select_subprotocol() and origin_allowed() on an
  environ built from the input; allowed: HTTPError 400 from validate and select_deflate.
tests/unit/test_fuzz_atheris.py runs each target for a few seconds in CI; the hypothesis
properties in tests/unit/test_fuzz_unit.py check the same parsers by construction.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from typing import Any

os.environ.setdefault("BLAZE_GREEN_NO_PATCH", "1")  # parsers only: no sockets, no patching

import atheris  # noqa: E402

with atheris.instrument_imports(include=["blaze_green"]):
    from blaze_green.headers import RequestHeaders
    from blaze_green.http import HTTPError, Request
    from blaze_green.ws import handshake
    from blaze_green.ws.frames import FrameParser, ProtocolError

FRAME_CODES = {1002, 1007, 1009}
FRAME_OPTIONS: list[dict[str, Any]] = [
    {"max_message_size": 4096},
    {"max_message_size": 4096, "deflate": True},
    {"max_message_size": 1 << 20, "deflate": True, "max_fragments": 8},
    {"max_message_size": 65536, "deflate": True, "inflate_context": True},
]


def fuzz_frames(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    options = FRAME_OPTIONS[fdp.ConsumeIntInRange(0, len(FRAME_OPTIONS) - 1)]
    cuts = sorted(fdp.ConsumeIntInRange(0, 512) for _ in range(fdp.ConsumeIntInRange(0, 6)))
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    parser = FrameParser(**options)
    last = 0
    try:
        for point in [*cuts, len(stream)]:
            point = min(point, len(stream))
            parser.feed(stream[last:point])
            last = point
    except ProtocolError as exc:
        if exc.code not in FRAME_CODES:
            raise AssertionError(f"undocumented close code {exc.code}") from exc


def fuzz_headers(data: bytes) -> None:
    headers = RequestHeaders(io.BytesIO(data))
    if headers.code not in (None, 0, 400, 431):
        raise AssertionError(f"unexpected status {headers.code}")
    for name, value in headers.items():
        for bad in ("\r", "\n", "\0"):
            if bad in name or bad in value:
                raise AssertionError(f"{bad!r} kept in {name!r}: {value!r}")


def fuzz_handshake(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)

    def text() -> str:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 80))

    environ = {
        "REQUEST_METHOD": fdp.PickValueInList(["GET", "POST", text()]),
        "SERVER_PROTOCOL": fdp.PickValueInList(["HTTP/1.1", "HTTP/1.0", text()]),
        "HTTP_CONNECTION": fdp.PickValueInList(["Upgrade", "keep-alive, Upgrade", text()]),
        "HTTP_UPGRADE": "websocket",
        "HTTP_SEC_WEBSOCKET_VERSION": fdp.PickValueInList(["13", text()]),
        "HTTP_SEC_WEBSOCKET_KEY": fdp.PickValueInList(["dGhlIHNhbXBsZSBub25jZQ==", text()]),
        "HTTP_HOST": text(),
        "wsgi.url_scheme": fdp.PickValueInList(["http", "https"]),
        "PATH_INFO": "/feed",
        "QUERY_STRING": "",
    }
    extensions, protocols, origin = text(), text(), text()
    try:
        handshake.validate(environ)
    except HTTPError as exc:
        if exc.status != 400:
            raise
    try:
        handshake.select_deflate(extensions)
    except HTTPError as exc:
        if exc.status != 400:
            raise
    handshake.select_subprotocol(protocols, ["v1.feed", "chat"])
    req = Request(environ)
    for policy in (None, "*", ["https://example.com", origin]):
        handshake.origin_allowed(policy, origin, req)


TARGETS = {"frames": fuzz_frames, "headers": fuzz_headers, "handshake": fuzz_handshake}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in (*TARGETS, "all"):
        sys.stderr.write(f"usage: python -m bench.fuzz {{{','.join(TARGETS)},all}} [flags]\n")
        return 2
    if argv[1] == "all":
        seconds = argv[argv.index("--seconds") + 1] if "--seconds" in argv else "60"
        failed = 0
        for name in TARGETS:
            cmd = [sys.executable, "-m", "bench.fuzz", name, f"-max_total_time={seconds}"]
            print(f"== {' '.join(cmd)}", flush=True)
            failed |= subprocess.call([*cmd, "-rss_limit_mb=1024", "-timeout=10"])
        return 1 if failed else 0
    target = TARGETS[argv[1]]
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
