"""Every key of the screen underneath, and the app's own, in one list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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


def bindings_of(nodes: Iterable[DOMNode]) -> list[tuple[str, str]]:
    """(keys, description) of every described binding of ``nodes``."""
    return [(display(b), b.description) for _, b in described(nodes)]


def help_table(sections: list[tuple[str, list[tuple[str, str]]]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True, min_width=14)
    table.add_column()
    for title, rows in sections:
        table.add_row(Text(title, style="bold underline"), "")
        for keys, description in rows:
            table.add_row(keys, description)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    """Keys of the screen it was opened on: panels, then global, then navigation."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__(classes="dialog")
        self.under = under

    def sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        name = getattr(self.under, "HELP_TITLE", "This screen")
        return [(name, bindings_of(own_nodes(self.under))),
                ("Everywhere", bindings_of([self.app])), ("Navigation", list(NAV))]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(help_table(self.sections()))
            yield Static("Esc or ? closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
