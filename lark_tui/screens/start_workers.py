"""Start N local worker processes for chosen queues at a chosen concurrency."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static

from lark_tui.services import services

MAX_WORKERS = 64


@dataclass(frozen=True, slots=True)
class WorkersRequest:
    queues: tuple[str, ...]
    concurrency: int
    count: int


def validate(queues: list[str], concurrency: str, count: str) -> WorkersRequest:
    """The request the form describes; raises ``ValueError`` naming the bad field."""
    if not queues:
        raise ValueError("queues: choose at least one (space toggles)")
    try:
        conc, n = int(concurrency.strip()), int(count.strip())
    except ValueError:
        raise ValueError("workers and concurrency: expected whole numbers") from None
    if not 1 <= n <= MAX_WORKERS:
        raise ValueError(f"workers: expected 1…{MAX_WORKERS}, got {n}")
    if conc < 1:
        raise ValueError(f"concurrency: expected 1 or more, got {conc}")
    return WorkersRequest(tuple(queues), conc, n)


class StartWorkersDialog(ModalScreen[WorkersRequest | None]):
    """Queues (space toggles), how many processes, jobs at once per process."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Start", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, queues: tuple[str, ...], concurrency: int,
                 chosen: tuple[str, ...] = ()) -> None:
        super().__init__(classes="dialog")
        self.queues = queues
        self.concurrency = concurrency
        self.chosen = set(chosen or queues)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form"):
            yield Label("Start local workers", classes="dialog-title")
            yield Label("Queues to serve (↑↓ move, space toggles)", classes="section")
            yield SelectionList[str](*((q, q, q in self.chosen) for q in self.queues),
                                     id="queues", compact=True)
            with Horizontal(classes="field"):
                yield Label("Workers", classes="label")
                yield Input("1", id="count", compact=True, type="integer")
                yield Label("Concurrency", classes="label")
                yield Input(str(self.concurrency), id="concurrency", compact=True,
                            type="integer")
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Start (ctrl+s)", variant="primary", id="go", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = services(self).cursor_blink
        self.query_one("#count", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        selection = self.query_one(SelectionList)
        try:
            request = validate(list(selection.selected),
                               self.query_one("#concurrency", Input).value,
                               self.query_one("#count", Input).value)
        except ValueError as exc:
            self.query_one("#error", Static).update(str(exc))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)
