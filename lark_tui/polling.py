"""Poll, render, re-arm: the one way live data reaches the screen.

A widget that shows live data mixes in :class:`Polling` and implements
:meth:`Polling.poll` (fetch through the data source, then render). The loop runs
as a background async worker owned by that widget, so it dies with the widget;
polls never overlap, pause while the widget's screen is not on top (under a
modal), back off while Redis is away, and can be woken early by
:meth:`Polling.poll_now` after an action.
"""

from __future__ import annotations

import asyncio
import contextlib

from textual.widget import Widget

from lark_core.connection import raise_if_cancelled
from lark_core.errors import LarkError, RedisUnavailable
from lark_tui.messages import RedisStatus

MAX_BACKOFF = 5.0


class Polling(Widget):
    """Base for widgets with a poll loop; subclasses set ``poll_interval`` and ``poll()``."""

    poll_interval: float = 1.0
    #: whether ``poll()`` reads Redis (only those polls report Redis health)
    reads_redis: bool = True
    #: the last error shown by this widget (other than Redis being away)
    poll_error: str | None = None
    #: polls finished so far, successful or not (tests wait on it)
    polls: int = 0

    def start_polling(self, interval: float | None = None) -> None:
        if interval is not None:
            self.poll_interval = interval
        self._wake = asyncio.Event()
        self.run_worker(self._poll_loop(), exclusive=True, group="poll",
                        name=f"poll-{type(self).__name__}")

    def poll_now(self) -> None:
        """Refresh as soon as possible (after an action changed something)."""
        wake = getattr(self, "_wake", None)
        if wake is not None:
            wake.set()

    async def poll(self) -> None:
        """Fetch and render once. Raise ``LarkError`` on failure."""
        raise NotImplementedError

    def _visible(self) -> bool:
        try:
            return self.is_attached and self.screen.is_active and self.display
        except Exception:
            return False

    async def _poll_loop(self) -> None:
        delay = self.poll_interval
        while True:
            if self._visible():
                delay = await self._poll_once(delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay if self._visible() else 0.2)
            self._wake.clear()

    async def _poll_once(self, delay: float) -> float:
        try:
            return await self._attempt(delay)
        finally:
            self.polls += 1

    async def _attempt(self, delay: float) -> float:
        try:
            await self.poll()
        except RedisUnavailable as exc:
            raise_if_cancelled()
            self.post_message(RedisStatus(str(exc)))
            return min(MAX_BACKOFF, max(delay, self.poll_interval) * 2)
        except LarkError as exc:
            self.poll_error = str(exc)
            return self.poll_interval
        self.poll_error = None
        if self.reads_redis:
            self.post_message(RedisStatus(None))
        return self.poll_interval
