"""One page of a queue's jobs in one state; polls only that page."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from lark_tui import format as fmt
from lark_tui.messages import PageLoaded
from lark_tui.model import JobPage, JobSummary
from lark_tui.polling import Polling
from lark_tui.services import services
from lark_tui.tables import Row, content_width, sync_rows

COLUMNS = (("id", "ID", 26), ("name", "Name", 16), ("attempts", "Try", 5), ("age", "Age", 6))
NARROW = 100
NARROW_ID = 12


def info(job: JobSummary, now: float) -> str:
    """The last column: why it failed, when it is due, when it finished."""
    if job.state == "failed":
        return fmt.one_line(job.reason)
    if job.state == "delayed" and job.delay_until:
        return f"due in {fmt.duration(job.delay_until / 1000 - now)}"
    if job.state == "completed" and job.finished_on:
        return f"finished {fmt.age(job.finished_on, now)} ago"
    return ""


def short_id(job_id: str, width: int) -> str:
    """The id, or its distinguishing tail when the column is narrow."""
    return job_id if len(job_id) <= width else "…" + job_id[-(width - 1):]


def job_row(job: JobSummary, now: float, id_width: int = 26) -> Row:
    style = "red" if job.state == "failed" else ""
    return job.id, [
        Text(short_id(job.id, id_width), no_wrap=True),
        Text(job.name, no_wrap=True, overflow="ellipsis"),
        Text(f"{job.attempts_made}/{job.max_attempts}", justify="right"),
        Text(fmt.age(job.timestamp, now), justify="right"),
        Text(info(job, now), style=style, no_wrap=True, overflow="ellipsis"),
    ]


class JobsTable(DataTable[Text], Polling):
    """Jobs of ``queue`` in ``state``, page by page; never more than one page in memory."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, queue: str, state: str, **kwargs: object) -> None:
        super().__init__(cursor_type="row", **kwargs)  # type: ignore[arg-type]
        self.queue = queue
        self.state = state
        self.page = 0
        self.current: JobPage | None = None
        self._rows: list[Row] = []

    def _id_width(self) -> int:
        return NARROW_ID if self.app.size.width < NARROW else COLUMNS[0][2]

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            width = self._id_width() if key == "id" else width
            self.add_column(Text(label, justify="right") if key in ("attempts", "age") else label,
                            width=width, key=key)
        self.add_column("Reason / info", key="info", width=self._info_width())
        self.start_polling(services(self).poll_interval * 1.5)

    def _info_width(self) -> int:
        width = content_width(self)
        fixed = sum(w for _, _, w in COLUMNS[1:]) + self._id_width() + 2 * (len(COLUMNS) + 1)
        return max(12, width - fixed - 1)

    def on_resize(self) -> None:
        column = self.columns.get(ColumnKey("info"))
        if column is not None and column.width != self._info_width():
            column.width = self._info_width()
            self.refresh()

    def show(self, state: str | None = None, page: int | None = None) -> None:
        """Switch state and/or page; refreshes at once."""
        if state is not None and state != self.state:
            self.state, self.page = state, 0
            self._rows = []
            self.clear()
        if page is not None:
            self.page = max(0, page)
        self.poll_now()

    async def poll(self) -> None:
        svc = services(self)
        state, page = self.state, self.page
        result = await svc.data.jobs_page(self.queue, state, page, svc.page_size)
        if (state, page) == (self.state, self.page):
            self.render_page(result)

    def render_page(self, page: JobPage) -> None:
        now = services(self).clock()
        self.page = page.page
        self.current = page
        rows = [job_row(j, now, self._id_width()) for j in page.jobs]
        sync_rows(self, rows, self._rows)
        self._rows = rows
        self.post_message(PageLoaded(page))

    @property
    def selected(self) -> JobSummary | None:
        if self.current is None or not self.current.jobs or self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return next((j for j in self.current.jobs if j.id == key), None)
