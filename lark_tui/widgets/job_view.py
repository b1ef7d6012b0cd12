"""Everything about one job: fields, payload, return value, failure; kept live."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from lark_tui import format as fmt
from lark_tui.messages import JobLoaded
from lark_tui.model import JobDetail
from lark_tui.polling import Polling
from lark_tui.services import services

STATE_STYLE = {"failed": "bold red", "completed": "green", "active": "cyan",
               "delayed": "yellow", "paused": "yellow", "waiting": ""}


def fields_table(job: JobDetail, now: float) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("id", job.id)
    grid.add_row("name", f"{job.name}   queue {job.queue}   priority {job.priority}")
    grid.add_row("state", Text(job.state, style=STATE_STYLE.get(job.state, "")))
    stalls = f"   stalled {job.stalled_count}x" if job.stalled_count else ""
    grid.add_row("attempts", f"{job.attempts_made} of {job.max_attempts}{stalls}")
    if job.progress not in (None, 0, "", {}):
        grid.add_row("progress", fmt.pretty_json(job.progress))
    grid.add_row("created", fmt.stamp(job.timestamp, now))
    if job.delay_until:
        grid.add_row("due", fmt.stamp(job.delay_until, now))
    grid.add_row("started", fmt.stamp(job.processed_on, now))
    grid.add_row("finished", fmt.stamp(job.finished_on, now))
    return grid


def json_block(title: str, value: Any) -> list[RenderableType]:
    """A titled, highlighted JSON value."""
    try:
        body: RenderableType = JSON(fmt.pretty_json(value), indent=2)
    except ValueError:
        body = Text(repr(value))
    return [Text(title, style="bold underline"), body]


def detail_renderable(job: JobDetail, now: float) -> RenderableType:
    """The whole detail view of ``job`` as one renderable (a function of the snapshot)."""
    parts: list[RenderableType] = [fields_table(job, now), Text()]
    if job.failed_reason:
        parts += [Text("Failure", style="bold underline"), Text(job.failed_reason, style="red"),
                  Text()]
    parts += json_block("Payload", job.payload)
    if job.state == "completed" or job.return_value is not None:
        parts += [Text(), *json_block("Return value", job.return_value)]
    if job.stacktrace:
        parts += [Text(), Text("Traceback", style="bold underline")]
        parts += [Text(trace.rstrip(), style="red") for trace in job.stacktrace]
    return Group(*parts)


class JobView(VerticalScroll, Polling):
    """The detail pane; polls the job each tick and redraws when it changed."""

    def __init__(self, queue: str, job_id: str, job: JobDetail | None = None,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.queue = queue
        self.job_id = job_id
        self.job = job
        self.gone = False
        self._body = Static(id="job-body")

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._body

    def on_mount(self) -> None:
        self.border_title = f"Job {self.job_id}"
        self.draw()
        self.start_polling(services(self).poll_interval)

    async def poll(self) -> None:
        job = await services(self).data.job(self.queue, self.job_id)
        if job is None:
            self.gone = True
        elif job != self.job or self.gone:
            self.gone = False
            changed_state = self.job is None or self.job.state != job.state
            self.job = job
            if changed_state:
                self.post_message(JobLoaded(job))
        self.draw()

    def draw(self) -> None:
        now = services(self).clock()
        if self.gone or self.job is None:
            text = "This job no longer exists (removed, or cleaned by its removal policy)."
            self._body.update(Text(text if self.gone else "Loading…", style="dim"))
        else:
            self._body.update(detail_renderable(self.job, now))
