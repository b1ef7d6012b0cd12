"""The top line: project and Redis; turns into a red banner while Redis is away."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from lark_tui.services import services


class StatusBar(Static):
    """Project, masked Redis URL and, on a bad day, what failed and that we retry."""

    def __init__(self, context: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.context = context

    def on_mount(self) -> None:
        self.watch(self.app, "redis_error", self._refresh_status, init=True)

    def set_context(self, context: str) -> None:
        self.context = context
        self._refresh_status(getattr(self.app, "redis_error", None))

    def _refresh_status(self, error: str | None) -> None:
        self.set_class(error is not None, "-down")
        self.update(self.banner(error) if error else self.normal())

    def normal(self) -> Text:
        data = services(self).data
        text = Text.assemble(("lark", "bold"), " ", (data.redis_url, "dim"))
        if self.context:
            text.append("  >  ")
            text.append(self.context, "bold")
        return text

    def banner(self, error: str) -> Text:
        data = services(self).data
        since = getattr(self.app, "redis_down_since", None) or services(self).clock()
        text = Text.assemble(("✖ Redis unreachable", "bold"), ": ")
        text.append(error if data.redis_url in error else f"{data.redis_url}: {error}")
        text.append(f"\nRetrying every few seconds since {time.strftime('%H:%M:%S', time.localtime(since))}"
                    "; figures below are from before. It recovers by itself.")
        return text
