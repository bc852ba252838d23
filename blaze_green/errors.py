"""The package's exceptions: every error blaze_green raises on purpose derives from one base."""

from __future__ import annotations

__all__ = ["BlazeGreenError", "ConnectionClosed"]


class BlazeGreenError(Exception):
    """Base of the exceptions blaze_green raises on purpose (catch it to catch them all)."""


class ConnectionClosed(BlazeGreenError):
    """The WebSocket session is closing or closed: `send` no longer delivers, `receive` has
    nothing more. Raised by the server's `WebSocket` and by the test client's session alike.

    `code` is the close code the session ended with (1006 when the connection ended without a
    close frame; `None` if not known yet) and `reason` the close reason.
    """

    def __init__(self, code: int | None, reason: str = "") -> None:
        shown = f"code {code}{', ' if reason else ''}{reason}"
        super().__init__(f"the WebSocket session is closed ({shown})")
        self.code = code
        self.reason = reason
