"""The dashboard: queues, workers and a log pane, all live, all on one screen."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from lark_tui.actions import perform, refresh_live
from lark_tui.messages import OverviewLoaded, WorkerChosen
from lark_tui.screens.confirm import ConfirmDialog
from lark_tui.screens.start_workers import StartWorkersDialog, WorkersRequest
from lark_tui.services import services
from lark_tui.supervisor import WorkerSpec
from lark_tui.widgets.log_pane import LogPane
from lark_tui.widgets.queues_table import QueuesTable
from lark_tui.widgets.status_bar import StatusBar
from lark_tui.widgets.workers_table import WorkersTable


class MainScreen(Screen[None]):
    """Queues on top, workers beneath, the selected worker's output at the bottom."""

    HELP_TITLE = "Dashboard"
    #: every key works from any panel; each panel shows (in the footer) the keys about it
    BINDINGS = [
        Binding("s", "start_workers", "Start workers"),
        Binding("f", "failed", "Failed jobs", show=False),
        Binding("p", "pause", "Pause/resume queue", show=False),
        Binding("R", "retry_all", "Retry all failed", show=False),
        Binding("plus,equals_sign", "scale(1)", "Scale up", show=False),
        Binding("minus", "scale(-1)", "Scale down", show=False),
        Binding("x", "stop_worker", "Stop worker", show=False),
        Binding("r", "restart_worker", "Restart worker", show=False),
        Binding("l", "follow", "Follow log on/off", show=False),
        Binding("z", "zoom", "Zoom panel", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield QueuesTable(id="queues")
        yield WorkersTable(id="workers")
        yield LogPane(id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(QueuesTable).focus()

    @property
    def current_queue(self) -> str | None:
        return self.query_one(QueuesTable).selected

    # -- queues -------------------------------------------------------------
    @on(DataTable.RowSelected, "#queues")
    def _queue_selected(self) -> None:
        self.action_open_jobs()

    def _need_queue(self) -> str | None:
        queue = self.current_queue
        if queue is None:
            self.notify("No queue selected.", severity="warning")
        return queue

    def action_open_jobs(self, state: str | None = None) -> None:
        from lark_tui.screens.jobs import JobsScreen

        queue = self._need_queue()
        if queue is None:
            return
        if state is None:
            overview = self.query_one(QueuesTable).overview
            stats = overview.get(queue) if overview else None
            state = "failed" if stats is None or stats.failed else "waiting"
        self.app.push_screen(JobsScreen(queue, state))

    def action_failed(self) -> None:
        self.action_open_jobs("failed")

    def action_pause(self) -> None:
        queue = self._need_queue()
        overview = self.query_one(QueuesTable).overview
        if queue is None or overview is None:
            return
        stats = overview.get(queue)
        pause = not (stats and stats.is_paused)
        verb = "Paused" if pause else "Resumed"
        perform(self, services(self).data.set_paused(queue, pause), f"{verb} {queue}",
                what="Pause" if pause else "Resume")

    def action_retry_all(self) -> None:
        queue = self._need_queue()
        overview = self.query_one(QueuesTable).overview
        stats = overview.get(queue) if overview and queue else None
        if queue is None or stats is None:
            return
        if not stats.failed:
            self.notify(f"{queue} has no failed jobs.")
            return
        confirm_retry_all(self, queue, stats.failed)

    # -- workers ------------------------------------------------------------
    def _selected_worker(self) -> tuple[int | None, WorkerSpec | None]:
        row = self.query_one(WorkersTable).selected_row
        if row is None or row.local_key is None:
            return None, None
        proc = services(self).supervisor.get(row.local_key)
        return row.local_key, (proc.spec if proc else None)

    def action_start_workers(self) -> None:
        svc = services(self)
        dialog = StartWorkersDialog(svc.data.queue_names, svc.default_concurrency)
        self.app.push_screen(dialog, self._start_workers)

    def _start_workers(self, request: WorkersRequest | None) -> None:
        if request is None:
            return
        keys = services(self).supervisor.start(request.queues, request.concurrency,
                                                request.count)
        self.notify(f"Started {len(keys)} worker(s) for {', '.join(request.queues)}")
        refresh_live(self)

    def action_scale(self, delta: int) -> None:
        sup = services(self).supervisor
        _, spec = self._selected_worker()
        live = [w.spec for w in sup.alive() if not w.stop_requested]
        if spec is None or (delta < 0 and spec not in live):
            # nothing selected, or the selected kind has none left to stop (a stopped or
            # crashed row): scale the newest live kind instead of doing nothing
            spec = live[-1] if live else spec
        if spec is None and delta > 0:
            svc = services(self)
            spec = WorkerSpec(svc.data.queue_names, svc.default_concurrency)
        if spec is None:
            self.notify("No local workers to scale down.", severity="warning")
            return
        keys = sup.scale(spec, delta)
        verb = "Started" if delta > 0 else "Stopping"
        self.notify(f"{verb} {len(keys)} worker(s) ({','.join(spec.queues)} x{spec.concurrency})"
                    if keys else "Nothing to scale down.")
        refresh_live(self)

    def action_stop_worker(self) -> None:
        row = self.query_one(WorkersTable).selected_row
        sup = services(self).supervisor
        if row is None or row.local_key is None:
            self.notify("Select a local worker: remote ones are stopped on their host.",
                        severity="warning")
            return
        if sup.forget(row.local_key):
            self.notify(f"Removed finished worker pid {row.pid} from the list.")
        else:
            sup.stop(row.local_key)
            self.notify(f"Stopping worker pid {row.pid} (SIGTERM: in-flight jobs finish).")
        refresh_live(self)

    def action_restart_worker(self) -> None:
        key, _ = self._selected_worker()
        if key is None:
            self.notify("Select a local worker to restart.", severity="warning")
            return
        services(self).supervisor.restart(key)
        self.notify("Restarting worker: the old one finishes its jobs, a new one starts.")
        refresh_live(self)

    def on_overview_loaded(self, message: OverviewLoaded) -> None:
        self.query_one(WorkersTable).show_registry(message.overview.workers)

    # -- log ----------------------------------------------------------------
    def on_worker_chosen(self, message: WorkerChosen) -> None:
        self.query_one(LogPane).show_worker(message.key, message.label, message.note)

    def action_follow(self) -> None:
        on_ = self.query_one(LogPane).toggle_follow()
        self.notify("Log follow on" if on_ else "Log follow off: scroll freely", timeout=2)

    def action_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not None:
            self.maximize(self.focused, container=False)


def confirm_retry_all(screen: Screen[Any], queue: str, count: int) -> None:
    """Ask, then retry every failed job of ``queue``."""

    def answer(yes: bool | None) -> None:
        if yes:
            perform(screen, services(screen).data.retry_all_failed(queue),
                    lambda n: f"Retried {n:,} failed job(s) in {queue}", what="Retry all")

    message = (f"Retry all {count:,} failed job(s) in queue '{queue}'?\n"
               "Each goes back to waiting with its attempts reset.")
    screen.app.push_screen(ConfirmDialog("Retry all failed", message, f"Retry {count:,}"),
                           answer)
