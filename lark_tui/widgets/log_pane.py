"""A bounded, follow-able tail of a local worker's output or of one job's log."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Self

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import RichLog

from lark_core.errors import JobNotFound
from lark_tui.polling import Polling
from lark_tui.services import services

MAX_LINES = 2000
LEVEL_STYLES = ((" ERROR ", "red"), (" WARN", "yellow"), ("Traceback", "red"),
                (" failed", "red"), (" DEBUG ", "dim"), ("[lark-tui]", "magenta"))


def styled(line: str) -> Text:
    """A log line, coloured by level."""
    text = Text(line)
    for marker, style in LEVEL_STYLES:
        if marker in line:
            text.stylize(style)
            break
    return text


@dataclass(frozen=True, slots=True)
class WorkerSource:
    key: int
    label: str


@dataclass(frozen=True, slots=True)
class JobSource:
    queue: str
    job_id: str


class LogPane(RichLog, Polling):
    """Tails its source every half second; keeps at most ``MAX_LINES`` lines."""

    BORDER_TITLE = "Log"
    BINDINGS = [Binding("l", "screen.follow", "Follow on/off")]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=True, min_width=20, **kwargs)  # type: ignore[arg-type]
        self.source: WorkerSource | JobSource | None = None
        self._pos = 0
        self._gone = False
        #: the lines as written, to wrap them again when the width changes
        self._texts: deque[Text] = deque(maxlen=MAX_LINES)
        self._wrap_width = 0

    def on_mount(self) -> None:
        self._show_mode()
        self.start_polling(services(self).poll_interval / 2)

    def add(self, text: Text) -> None:
        """Append one line (wrapped to the pane's width)."""
        self._texts.append(text)
        self.write(text)

    def clear(self) -> Self:
        self._texts.clear()
        return super().clear()

    def on_resize(self, event: events.Resize) -> None:
        """Lines are wrapped when written: wrap them again at a new width, so a
        terminal resized narrower shows every line whole (no horizontal scroll)."""
        width = self.scrollable_content_region.width
        if width == self._wrap_width:
            return
        known, self._wrap_width = self._wrap_width, width
        if not known or not self._size_known or not self._texts:
            return
        texts = list(self._texts)
        super().clear()
        for text in texts:
            self.write(text, scroll_end=False)
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=True)

    @property
    def follow(self) -> bool:
        return self.auto_scroll

    def toggle_follow(self) -> bool:
        self.auto_scroll = not self.auto_scroll
        if self.auto_scroll:
            self.scroll_end(animate=False)
        self._show_mode()
        return self.auto_scroll

    def _show_mode(self) -> None:
        self.border_subtitle = "l: follow on" if self.auto_scroll else "l: follow off · ↑↓ PgUp"

    def show_worker(self, key: int | None, label: str, note: str = "") -> None:
        """Tail local worker ``key``; ``None`` shows ``note`` instead."""
        source = None if key is None else WorkerSource(key, label)
        if source == self.source and source is not None:
            return
        self._switch(source, f"Log · {label}" if label else "Log")
        if note:
            self.add(Text(note, style="dim"))

    def show_job(self, queue: str, job_id: str) -> None:
        self._switch(JobSource(queue, job_id), "Job log · no lines yet")

    def _switch(self, source: WorkerSource | JobSource | None, title: str) -> None:
        self.source = source
        self.reads_redis = isinstance(source, JobSource)
        self._pos = 0
        self._gone = False
        self.border_title = title
        self.clear()
        self.poll_now()

    async def poll(self) -> None:
        source = self.source
        if isinstance(source, WorkerSource):
            lines, self._pos = services(self).supervisor.lines_since(source.key, self._pos)
        elif isinstance(source, JobSource) and not self._gone:
            lines = list(await self._job_lines(source))
        else:
            return
        if source is self.source and lines:
            for line in lines:
                self.add(styled(line))
            if isinstance(source, JobSource):
                self.border_title = f"Job log · {self._pos:,} line(s)"

    async def _job_lines(self, source: JobSource) -> tuple[str, ...]:
        try:
            lines = await services(self).data.job_logs(source.queue, source.job_id, self._pos)
        except JobNotFound:
            self._gone = True
            return ("[lark-tui] the job no longer exists",)
        self._pos += len(lines)
        return lines
