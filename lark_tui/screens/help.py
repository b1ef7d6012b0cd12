"""Every key of the screen underneath, and the app's own, in one list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

from lark_tui.keys import described, display, own_nodes

NAV = (("tab / shift+tab", "Move between panels"), ("↑ ↓ PgUp PgDn", "Move in a list"),
       ("ctrl+p", "Command palette: every action by name"), ("esc", "Back / close"))


def screen_keys() -> list[tuple[type[Screen[Any]], str, tuple[type[DOMNode], ...]]]:
    """Each screen, a title saying how to get there, and the classes with its keys."""
    from lark_tui.screens.job_detail import JobDetailScreen
    from lark_tui.screens.jobs import JobsScreen
    from lark_tui.screens.main import MainScreen
    from lark_tui.widgets.jobs_table import JobsTable
    from lark_tui.widgets.log_pane import LogPane
    from lark_tui.widgets.queues_table import QueuesTable
    from lark_tui.widgets.workers_table import WorkersTable

    return [
        (MainScreen, "Dashboard", (MainScreen, QueuesTable, WorkersTable, LogPane)),
        (JobsScreen, "Jobs list (enter or f on a queue)", (JobsScreen, JobsTable)),
        (JobDetailScreen, "Job detail (enter on a job, or g)", (JobDetailScreen, LogPane)),
    ]


def bindings_of(nodes: Iterable[Any]) -> list[tuple[str, str]]:
    """(keys, description) of every described binding of ``nodes``."""
    return [(display(b), b.description) for _, b in described(nodes)]


def help_table(sections: list[tuple[str, list[tuple[str, str]]]]) -> Group:
    """One titled block of keys a section; titles sit above, so a long one does not
    widen the key column."""
    parts: list[Text | Table] = []
    for title, rows in sections:
        parts.append(Text(title, style="bold underline"))
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True, min_width=14)
        table.add_column()
        for keys, description in rows:
            table.add_row(keys, description)
        parts += [table, Text("")]
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """Keys of the screen it was opened on: panels, then global, then navigation."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__(classes="dialog")
        self.under = under

    def sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """This screen's keys first, then the app's, then every other screen's (so
        the list holds every action), then navigation."""
        name = getattr(self.under, "HELP_TITLE", "This screen")
        others = [(title, bindings_of(classes)) for screen, title, classes in screen_keys()
                  if not isinstance(self.under, screen)]
        return [(name, bindings_of(own_nodes(self.under))),
                ("Everywhere", bindings_of([self.app])), *others, ("Navigation", list(NAV))]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(help_table(self.sections()))
            yield Static("Esc or ? closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
