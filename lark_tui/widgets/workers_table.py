"""Workers: the local processes this console spawned, beside the registry's others."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from lark_tui import format as fmt
from lark_tui.messages import WorkerChosen
from lark_tui.model import LocalWorker, WorkerEntry
from lark_tui.polling import Polling
from lark_tui.services import services
from lark_tui.tables import content_width

STATE_STYLE = {"running": "green", "starting": "cyan", "stopping": "yellow",
               "stopped": "dim", "exited": "dim", "crashed": "bold red", "remote": "",
               "killed": "red",
               "stale": "yellow"}
COLUMNS = (("where", "Where", 9), ("pid", "PID", 7), ("state", "State", 10), ("up", "Up", 6),
           ("cpu", "CPU%", 4), ("mem", "Mem", 5), ("done", "Done", 5))
STALE_MS = 30_000


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One rendered row: a local worker (``local_key``) or a registry entry."""

    row_key: str
    where: str
    pid: int
    state: str
    up: str
    cpu: str
    mem: str
    done: str
    queues: str
    local_key: int | None = None
    note: str = ""

    def cells(self) -> list[Text]:
        return [
            Text(self.where, no_wrap=True, overflow="ellipsis"),
            Text(str(self.pid), justify="right"),
            Text(self.state, style=STATE_STYLE.get(self.state.split(" ")[0], "")),
            Text(self.up, justify="right"), Text(self.cpu, justify="right"),
            Text(self.mem, justify="right"), Text(self.done, justify="right"),
            Text(self.queues, no_wrap=True, overflow="ellipsis"),
        ]


def _same_host(a: str, b: str) -> bool:
    return a == b or a.split(".")[0] == b.split(".")[0]


def local_row(w: LocalWorker, entry: WorkerEntry | None, now: float) -> WorkerRow:
    state = w.state
    if state == "running" and entry is None:
        state = "starting"
    if state in ("crashed", "exited"):
        state = f"{state} {w.exit_code}"
    queues = f"{','.join(w.queues) or 'all'} x{w.concurrency}"
    return WorkerRow(
        row_key=f"L{w.key}", where="local", pid=w.pid, state=state,
        up=fmt.duration(now - w.started) if w.alive else "-",
        cpu="-" if w.cpu is None else f"{w.cpu:.0f}", mem=fmt.size(w.memory),
        done="-" if entry is None else str(entry.jobs_done), queues=queues, local_key=w.key,
    )


def remote_row(e: WorkerEntry, now: float) -> WorkerRow:
    stale = e.last_seen and now * 1000 - e.last_seen > STALE_MS
    current = ", ".join(e.current) or "none"
    return WorkerRow(
        row_key=f"R{e.id}", where=e.host, pid=e.pid, state="stale" if stale else "remote",
        up=fmt.age(e.started, now), cpu="-", mem="-", done=str(e.jobs_done),
        queues=f"{','.join(e.queues) or 'all'} x{e.concurrency}",
        note=f"worker {e.id} (pid {e.pid}) on {e.host}: its output stays on that host. "
             f"Current jobs: {current}. Done {e.jobs_done}, failed {e.jobs_failed}.",
    )


def worker_rows(local: tuple[LocalWorker, ...], registry: tuple[WorkerEntry, ...],
                hostname: str, now: float) -> list[WorkerRow]:
    """Local workers first (with registry stats), then every other registered worker."""
    mine = {e.pid: e for e in registry if _same_host(e.host, hostname)}
    local_pids = {w.pid for w in local}
    rows = [local_row(w, mine.get(w.pid) if w.alive else None, now) for w in local]
    others = [e for e in registry if not (e.pid in local_pids and _same_host(e.host, hostname))]
    return rows + [remote_row(e, now) for e in others]


class WorkersTable(DataTable[Text], Polling):
    """The workers panel: the supervisor's processes each tick, merged with the
    registry that :class:`~lark_tui.widgets.queues_table.QueuesTable` reads."""

    BORDER_TITLE = "Workers"
    reads_redis = False
    BINDINGS = [
        Binding("plus,equals_sign", "screen.scale(1)", "More", key_display="+"),
        Binding("minus", "screen.scale(-1)", "Fewer", key_display="-"),
        Binding("x", "screen.stop_worker", "Stop"),
        Binding("r", "screen.restart_worker", "Restart"),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", **kwargs)  # type: ignore[arg-type]
        self.shown: list[WorkerRow] = []
        self.registry: tuple[WorkerEntry, ...] = ()
        self._announced: WorkerChosen | None = None

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, width=width, key=key)
        self.add_column("Queues", key="queues", width=self._queues_width())
        self.render_rows()
        self.start_polling(services(self).poll_interval)

    def _queues_width(self) -> int:
        width = content_width(self)
        fixed = sum(w for _, _, w in COLUMNS) + 2 * (len(COLUMNS) + 1)
        return max(10, width - fixed - 1)

    def on_resize(self) -> None:
        column = self.columns.get(ColumnKey("queues"))
        if column is not None and column.width != self._queues_width():
            column.width = self._queues_width()
            self.refresh()

    async def poll(self) -> None:
        """Local processes only; the registry arrives with the queues' overview."""
        self.render_rows()

    def show_registry(self, registry: tuple[WorkerEntry, ...]) -> None:
        self.registry = registry
        self.render_rows()

    def render_rows(self) -> None:
        svc = services(self)
        rows = worker_rows(svc.supervisor.snapshot(), self.registry, svc.hostname, svc.clock())
        if [r.row_key for r in rows] == [r.row_key for r in self.shown]:
            self._update(rows)
        else:
            self._rebuild(rows)

    def _update(self, rows: list[WorkerRow]) -> None:
        keys = [*(k for k, _, _ in COLUMNS), "queues"]
        for before, after in zip(self.shown, rows, strict=True):
            if before != after:
                for key, value in zip(keys, after.cells(), strict=True):
                    self.update_cell(after.row_key, key, value)
        self.shown = rows
        self._announce()

    def _rebuild(self, rows: list[WorkerRow]) -> None:
        current = self.selected_row
        self.shown = rows
        self.clear()
        for row in rows:
            self.add_row(*row.cells(), key=row.row_key)
        keys = [r.row_key for r in rows]
        if current is not None and current.row_key in keys:
            self.move_cursor(row=keys.index(current.row_key))
        self._announce()

    @property
    def selected_row(self) -> WorkerRow | None:
        if not self.shown or self.cursor_row >= len(self.shown):
            return None
        return self.shown[self.cursor_row]

    def _announce(self) -> None:
        """Tell the screen which worker is selected, once per change."""
        row = self.selected_row
        if row is None:
            message = WorkerChosen(None, "", "No workers yet: press s to start some.")
        else:
            message = WorkerChosen(row.local_key, f"{row.where} pid {row.pid}", row.note)
        if message != self._announced:
            self._announced = message
            self.post_message(message)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._announce()

