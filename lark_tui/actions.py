"""Running an operation against Redis from a key press without blocking input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from textual.dom import DOMNode

from lark_core.errors import LarkError
from lark_tui.polling import Polling

T = TypeVar("T")


def refresh_live(node: DOMNode) -> None:
    """Wake every live view on the screen stack (after an action changed Redis)."""
    for screen in node.app.screen_stack:
        for widget in screen.query(Polling):
            widget.poll_now()


def perform(node: DOMNode, coro: Awaitable[T], done: Callable[[T], str] | str | None = None,
            then: Callable[[T], object] | None = None, what: str = "Action") -> None:
    """Await ``coro`` in a background worker of ``node``; report success or the error."""

    async def run() -> None:
        try:
            result = await coro
        except LarkError as exc:
            node.app.notify(str(exc), title=f"{what} failed", severity="error", timeout=8)
            return
        if done is not None:
            node.app.notify(done(result) if callable(done) else done, title=what)
        refresh_live(node)
        if then is not None:
            then(result)

    node.run_worker(run(), group="actions")
