"""Every configured queue: live counts, paused marker, throughput sparkline."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable

from lark_tui import format as fmt
from lark_tui.messages import OverviewLoaded, QueueChosen
from lark_tui.model import Overview, QueueStats
from lark_tui.polling import Polling
from lark_tui.services import services
from lark_tui.tables import content_width

COUNTS = (("waiting", "Wait"), ("active", "Active"), ("delayed", "Delay"),
          ("completed", "Done"), ("failed", "Failed"), ("paused", "Paused"))
COUNT_WIDTH = 6
MIN_SPARK = 8


def layout(width: int, names: tuple[str, ...]) -> tuple[int, int]:
    """(name column width, sparkline width) for a table ``width`` cells wide."""
    name_w = min(24, max(8, max((len(n) for n in names), default=8) + 3))
    fixed = name_w + len(COUNTS) * COUNT_WIDTH + (len(COUNTS) + 2) * 2
    spark_w = max(MIN_SPARK, min(60, width - fixed - 1))
    return name_w, spark_w


def cells(q: QueueStats, name_w: int, spark_w: int, known: bool = True) -> list[Text]:
    """The row of one queue, as rendered text (``known=False``: nothing read yet)."""
    label = Text(("‖ " if q.is_paused else "") + q.name, no_wrap=True, overflow="ellipsis")
    if q.is_paused:
        label.stylize("bold yellow")
    row = [label]
    for key, _ in COUNTS:
        n = q.count(key)
        style = "dim" if n == 0 else {"failed": "bold red", "active": "green"}.get(key, "")
        row.append(Text(fmt.count(n) if known else "-", style=style, justify="right"))
    row.append(Text(fmt.sparkline(q.throughput, spark_w), style="cyan", no_wrap=True))
    return row


class QueuesTable(DataTable[Text], Polling):
    """The queues panel. Polls ``DataSource.overview()`` (one round trip) every tick
    and passes the workers it read on to the screen."""

    BORDER_TITLE = "Queues"
    BINDINGS = [
        Binding("enter", "select_cursor", "Jobs"),
        Binding("f", "screen.failed", "Failed"),
        Binding("p", "screen.pause", "Pause"),
        Binding("R", "screen.retry_all", "Retry all", key_display="R"),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.overview: Overview | None = None
        self._layout: tuple[int, int] | None = None

    def on_mount(self) -> None:
        svc = services(self)
        self.border_subtitle = "throughput: jobs/min, 30 min"
        self.show_empty(svc.data.queue_names)
        self.start_polling(svc.poll_interval)

    @property
    def selected(self) -> str | None:
        """The queue under the cursor."""
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return None if key.value is None else str(key.value)

    def show_empty(self, names: tuple[str, ...]) -> None:
        self.render_overview(Overview(tuple(QueueStats(n) for n in names)))

    async def poll(self) -> None:
        overview = await services(self).data.overview()
        self.render_overview(overview)
        self.post_message(OverviewLoaded(overview))

    def _width(self) -> int:
        return content_width(self)

    def render_overview(self, overview: Overview) -> None:
        names = tuple(q.name for q in overview.queues)
        wanted = layout(self._width(), names)
        old = self.overview
        if old is None or wanted != self._layout or names != tuple(q.name for q in old.queues):
            self._rebuild(overview, wanted)
        else:
            self._update(old, overview, wanted)
        self.overview = overview

    def _rebuild(self, overview: Overview, sizes: tuple[int, int]) -> None:
        cursor = self.cursor_row
        self._layout = sizes
        name_w, spark_w = sizes
        self.clear(columns=True)
        self.add_column("Queue", width=name_w, key="name")
        for key, label in COUNTS:
            self.add_column(Text(label, justify="right"), width=COUNT_WIDTH, key=key)
        self.add_column("Jobs/min", width=spark_w, key="spark")
        for q in overview.queues:
            self.add_row(*cells(q, name_w, spark_w, overview.fetched_at > 0), key=q.name)
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    def _update(self, old: Overview, new: Overview, sizes: tuple[int, int]) -> None:
        keys = ["name", *(k for k, _ in COUNTS), "spark"]
        for before, after in zip(old.queues, new.queues, strict=True):
            if before == after:
                continue
            for key, value in zip(keys, cells(after, *sizes), strict=True):
                self.update_cell(after.name, key, value)

    def on_resize(self, event: events.Resize) -> None:
        if self.overview is not None:
            self.render_overview(self.overview)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.post_message(QueueChosen(str(event.row_key.value)))
