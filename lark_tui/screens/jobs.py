"""One queue's jobs, by state (failed first), one page at a time."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from lark_tui.actions import perform
from lark_tui.messages import PageLoaded
from lark_tui.model import STATES, JobSummary
from lark_tui.screens.confirm import ConfirmDialog
from lark_tui.screens.main import confirm_retry_all
from lark_tui.services import services
from lark_tui.widgets.jobs_table import JobsTable
from lark_tui.widgets.state_tabs import StateTabs
from lark_tui.widgets.status_bar import StatusBar

#: the footer shows ``[ ] Page`` for both paging keys: room for ``⏎ Open`` at 80 columns
PAGING = Binding.Group("Page", compact=True)


class JobsScreen(Screen[None]):
    """Paged list; Enter opens a job, r/d/P act on it, 1-6 switch state, [ ] page."""

    HELP_TITLE = "Jobs list"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("enter", "open", show=False),  # described (and shown) by the table
        Binding("r", "retry", "Retry"),
        Binding("R", "retry_all", "Retry all", key_display="R"),
        Binding("d,delete", "remove", "Delete", key_display="d"),
        Binding("P", "promote", "Promote", key_display="P"),
        Binding("left_square_bracket", "page(-1)", "Prev page", key_display="[",
                group=PAGING),
        Binding("right_square_bracket", "page(1)", "Next page", key_display="]",
                group=PAGING),
        Binding("left_curly_bracket", "page(-1000000000)", "First page", key_display="{",
                show=False),
        Binding("right_curly_bracket", "page(1000000000)", "Last page", key_display="}",
                show=False),
        Binding("left", "state(-1)", "Prev state", show=False, priority=True),
        Binding("right", "state(1)", "Next state", show=False, priority=True),
        *(Binding(str(i), f"show_state('{s}')", f"Show {s}", show=False)
          for i, s in enumerate(STATES, 1)),
    ]

    def __init__(self, queue: str, state: str = "failed") -> None:
        super().__init__()
        self.queue = queue
        self.state = state if state in STATES else "failed"

    @property
    def current_queue(self) -> str:
        return self.queue

    def compose(self) -> ComposeResult:
        yield StatusBar(context=f"queue {self.queue}", id="status")
        yield StateTabs(self.state, id="states")
        yield JobsTable(self.queue, self.state, id="jobs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(JobsTable).focus()
        self._title()

    def _title(self) -> None:
        table = self.query_one(JobsTable)
        table.border_title = f"{self.queue} · {self.state}"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that do not apply to the jobs shown leave the footer."""
        return applies(action, self.state, self._failed())

    def _failed(self) -> int:
        tables = self.query(JobsTable)
        current = tables.first().current if tables else None
        return current.counts.get("failed", 0) if current else 0

    def on_page_loaded(self, message: PageLoaded) -> None:
        page = message.page
        self.refresh_bindings()
        self.query_one(StateTabs).show(page.state, page)
        table = self.query_one(JobsTable)
        first = page.page * page.page_size + 1 if page.jobs else 0
        last = page.page * page.page_size + len(page.jobs)
        table.border_subtitle = (f"{first:,}-{last:,} of {page.total:,} · page "
                                 f"{page.page + 1:,}/{page.pages:,} · [ ] page")

    # -- navigation ----------------------------------------------------------
    def action_back(self) -> None:
        self.dismiss(None)

    def action_show_state(self, state: str) -> None:
        self.state = state
        self.refresh_bindings()
        self.query_one(StateTabs).show(state)
        self.query_one(JobsTable).show(state=state)
        self._title()

    def action_state(self, step: int) -> None:
        self.action_show_state(STATES[(STATES.index(self.state) + step) % len(STATES)])

    def action_page(self, step: int) -> None:
        table = self.query_one(JobsTable)
        pages = table.current.pages if table.current else 1
        target = min(max(0, table.page + step), pages - 1)
        if target != table.page:
            table.show(page=target)

    @on(DataTable.RowSelected, "#jobs")
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        from lark_tui.screens.job_detail import JobDetailScreen

        job = self._job()
        if job is not None:
            self.app.push_screen(JobDetailScreen(job.queue, job.id))

    # -- actions on jobs --------------------------------------------------------
    def _job(self) -> JobSummary | None:
        job = self.query_one(JobsTable).selected
        if job is None:
            self.notify("No job selected.", severity="warning")
        return job

    def action_retry(self) -> None:
        job = self._job()
        if job is not None:
            retry_job(self, job.queue, job.id)

    def action_remove(self) -> None:
        job = self._job()
        if job is not None:
            remove_job(self, job.queue, job.id, job.name)

    def action_promote(self) -> None:
        job = self._job()
        if job is not None:
            promote_job(self, job.queue, job.id, job.state)

    def action_retry_all(self) -> None:
        failed = self._failed()
        if not failed:
            self.notify(f"{self.queue} has no failed jobs.")
            return
        confirm_retry_all(self, self.queue, failed)


def applies(action: str, state: str, failed: int = 0) -> bool:
    """Whether a job action makes sense for jobs in ``state``."""
    if action == "retry":
        return state in ("failed", "completed")
    if action == "promote":
        return state == "delayed"
    if action == "remove":
        return state != "active"
    if action == "retry_all":
        return failed > 0
    return True


def retry_job(screen: Screen[Any], queue: str, job_id: str) -> None:
    perform(screen, services(screen).data.retry(queue, job_id),
            f"Job {job_id} is waiting again", what="Retry")


def remove_job(screen: Screen[Any], queue: str, job_id: str, name: str,
               close: bool = False) -> None:
    """Confirm, then delete; ``close`` leaves ``screen`` once the job is gone."""

    def answer(yes: bool | None) -> None:
        if yes:
            perform(screen, services(screen).data.remove(queue, job_id),
                    f"Deleted job {job_id}", what="Delete",
                    then=(lambda _: screen.dismiss(None)) if close else None)

    message = f"Delete job {job_id} ({name}) from '{queue}', with its logs?\nThis cannot be undone."
    screen.app.push_screen(ConfirmDialog("Delete job", message, "Delete"), answer)


def promote_job(screen: Screen[Any], queue: str, job_id: str, state: str) -> None:
    if state != "delayed":
        screen.notify(f"Only delayed jobs can be promoted; this one is {state}.",
                      severity="warning")
        return
    perform(screen, services(screen).data.promote(queue, job_id),
            f"Job {job_id} promoted: it runs now", what="Promote")

