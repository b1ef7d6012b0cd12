"""The line above the jobs table: each state with its count; the current one lit."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from lark_tui import format as fmt
from lark_tui.model import STATES, JobPage

LABELS = {"completed": "done"}


def tabs_text(state: str, counts: dict[str, int], compact: bool) -> Text:
    """``1 failed 12 │ 2 waiting 1.0M …`` with ``state`` highlighted."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, name in enumerate(STATES, 1):
        if i > 1:
            text.append(" │ " if not compact else " ", "dim")
        n = counts.get(name, 0)
        label = f"{i} {LABELS.get(name, name)} {fmt.count(n) if compact else f'{n:,}'}"
        if name == state:
            text.append(f" {label} ", "bold reverse")
        else:
            text.append(label, "red" if name == "failed" and n else "")
    return text


class StateTabs(Static):
    """Which state is shown, and how many jobs each state holds."""

    def __init__(self, state: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.state = state
        self.counts: dict[str, int] = {}

    def on_mount(self) -> None:
        self.draw()

    def show(self, state: str, page: JobPage | None = None) -> None:
        self.state = state
        if page is not None:
            self.counts = dict(page.counts) or {page.state: page.total}
        self.draw()

    def draw(self) -> None:
        compact = self.app.size.width < 100
        self.update(tabs_text(self.state, self.counts, compact))

    def on_resize(self) -> None:
        self.draw()
