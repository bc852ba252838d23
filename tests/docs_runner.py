"""Run the Python blocks of one Markdown page, in order, in one namespace.

`python tests/docs_runner.py docs/page.md` (tests/test_docs.py does it for every page). Before
the page's blocks, the bodies of its `<!-- docs-test: setup ... -->` comments run: what a
fragment assumes (an `app`, a helper) without showing it on the page. After the blocks, every
`test_*` function a block defined is called; a `blaze_client` parameter gets a stand-in for
the pytest fixture that stops its clients afterwards. Blocks fenced as anything but `python`
(shell commands, output) are not run.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path
from typing import Any

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SETUP = re.compile(r"<!-- docs-test: setup\n(.*?)-->", re.S)


def blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def setups(text: str) -> list[str]:
    return SETUP.findall(text)


class ClientFactory:
    """What the `blaze_client` fixture does: start clients, stop them all at the end."""

    def __init__(self) -> None:
        self.clients: list[Any] = []

    def __call__(self, target: Any, **kwargs: Any) -> Any:
        from blaze_green.testing import TestClient

        client = TestClient(target, **kwargs).start()
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in reversed(self.clients):
            client.stop()


def run_page(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    # a real module, so that dataclasses, pickling and type hints find the page's names
    page = types.ModuleType("docs_page")
    sys.modules["docs_page"] = page
    namespace: dict[str, Any] = page.__dict__
    pieces = [("setup", s) for s in setups(text)] + [("block", b) for b in blocks(text)]
    for n, (kind, source) in enumerate(pieces, 1):
        exec(compile(source, f"{path}:{kind}{n}", "exec"), namespace)
    ran = 0
    for name, fn in list(namespace.items()):
        if name.startswith("test_") and inspect.isfunction(fn):
            factory = ClientFactory()
            wanted = inspect.signature(fn).parameters
            try:
                fn(**({"blaze_client": factory} if "blaze_client" in wanted else {}))
            finally:
                factory.stop()
            ran += 1
    print(f"{path}: {len(pieces)} blocks, {ran} test functions: ok")
    return 0


if __name__ == "__main__":
    sys.exit(run_page(Path(sys.argv[1])))
