"""A bounded, follow-able tail of a local worker's output or of one job's log."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
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

    def on_mount(self) -> None:
        self._show_mode()
        self.start_polling(services(self).poll_interval / 2)

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
            self.write(Text(note, style="dim"))

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
                self.write(styled(line))
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
