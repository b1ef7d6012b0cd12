"""One job in full: fields, payload, return value, traceback, and its log as it grows."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from lark_tui.messages import JobLoaded
from lark_tui.model import JobDetail
from lark_tui.screens.jobs import applies, promote_job, remove_job, retry_job
from lark_tui.widgets.job_view import JobView
from lark_tui.widgets.log_pane import LogPane
from lark_tui.widgets.status_bar import StatusBar


class JobDetailScreen(Screen[None]):
    """The detail view; the log pane below tails the job's log lines."""

    HELP_TITLE = "Job detail"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("r", "retry", "Retry"),
        Binding("d,delete", "remove", "Delete", key_display="d"),
        Binding("P", "promote", "Promote", key_display="P"),
        Binding("l", "follow", "Follow log"),
        Binding("c", "copy_id", "Copy id", show=False),
    ]

    def __init__(self, queue: str, job_id: str, job: JobDetail | None = None) -> None:
        super().__init__()
        self.queue = queue
        self.job_id = job_id
        self.initial = job

    @property
    def current_queue(self) -> str:
        return self.queue

    def compose(self) -> ComposeResult:
        yield StatusBar(context=f"queue {self.queue}", id="status")
        yield JobView(self.queue, self.job_id, self.initial, id="detail")
        yield LogPane(id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(LogPane).show_job(self.queue, self.job_id)
        self.query_one(JobView).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return applies(action, self._state(), 0 if action != "retry_all" else 1)

    def on_job_loaded(self, message: JobLoaded) -> None:
        self.refresh_bindings()

    def _state(self) -> str:
        views = self.query(JobView)
        job = views.first().job if views else None
        return job.state if job else "unknown"

    def action_back(self) -> None:
        self.dismiss(None)

    def action_retry(self) -> None:
        retry_job(self, self.queue, self.job_id)

    def action_remove(self) -> None:
        job = self.query_one(JobView).job
        remove_job(self, self.queue, self.job_id, job.name if job else "?", close=True)

    def action_promote(self) -> None:
        promote_job(self, self.queue, self.job_id, self._state())

    def action_follow(self) -> None:
        on_ = self.query_one(LogPane).toggle_follow()
        self.notify("Log follow on" if on_ else "Log follow off: scroll freely", timeout=2)

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.job_id)
        self.notify(f"Copied {self.job_id}", timeout=2)
