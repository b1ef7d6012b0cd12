"""Go to a job by id, in whichever queue holds it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from lark_tui.services import services


class JumpDialog(ModalScreen[str | None]):
    """Asks for a job id; Enter goes, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self) -> None:
        super().__init__(classes="dialog")

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Go to job", classes="dialog-title")
            yield Static("Job id (every configured queue is searched):", classes="dialog-body")
            yield Input(placeholder="e.g. 01J9Z…", id="job-id", compact=True)
            yield Static("", id="error", classes="error")
            yield Static("Enter go · Esc cancel", classes="hint")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = services(self).cursor_blink
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            self.query_one("#error", Static).update("Type a job id.")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
