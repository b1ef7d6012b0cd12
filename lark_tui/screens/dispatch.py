"""Dispatch a job: queue, name, JSON payload, delay and priority, validated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from lark_tui.services import services

MAX_PRIORITY = 2_097_152


@dataclass(frozen=True, slots=True)
class DispatchRequest:
    queue: str
    name: str
    payload: Any
    delay_ms: int = 0
    priority: int = 0


def _whole(text: str, what: str, top: int | None = None) -> int:
    text = text.strip() or "0"
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what}: expected a whole number, got {text!r}") from None
    if value < 0 or (top is not None and value > top):
        limit = f"0…{top:,}" if top is not None else "0 or more"
        raise ValueError(f"{what}: expected {limit}, got {value}")
    return value


def validate(queue: Any, name: str, payload: str, delay: str, priority: str) -> DispatchRequest:
    """The request the form describes; raises ``ValueError`` naming the bad field."""
    if not isinstance(queue, str) or not queue:
        raise ValueError("queue: choose one")
    name = name.strip()
    if not name:
        raise ValueError("job name: required (the Job class name, e.g. SendWelcomeEmail)")
    try:
        data = json.loads(payload.strip() or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"payload: not valid JSON ({exc.msg} at line {exc.lineno} "
                         f"column {exc.colno})") from None
    return DispatchRequest(queue, name, data, _whole(delay, "delay ms"),
                           _whole(priority, "priority", MAX_PRIORITY))


class DispatchDialog(ModalScreen[DispatchRequest | None]):
    """The form; Ctrl+S (or the button) dispatches, Esc cancels."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Dispatch", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, queues: tuple[str, ...], queue: str | None = None) -> None:
        super().__init__(classes="dialog")
        self.queues = queues
        self.queue = queue if queue in queues else (queues[0] if queues else None)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form"):
            yield Label("Dispatch a job", classes="dialog-title")
            with Horizontal(classes="field"):
                yield Label("Queue", classes="label")
                yield Select([(q, q) for q in self.queues], value=self.queue or Select.BLANK,
                             allow_blank=False, id="queue", compact=True)
            with Horizontal(classes="field"):
                yield Label("Job name", classes="label")
                yield Input(placeholder="SendWelcomeEmail", id="name", compact=True)
            yield Label("Payload (JSON, ctrl+s dispatches)", classes="section")
            yield TextArea("{}", language=None, id="payload", compact=True, tab_behavior="focus")
            with Horizontal(classes="field"):
                yield Label("Delay ms", classes="label")
                yield Input("0", id="delay", compact=True, type="integer")
                yield Label("Priority", classes="label")
                yield Input("0", id="priority", compact=True, type="integer")
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Dispatch (ctrl+s)", variant="primary", id="go", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        blink = services(self).cursor_blink
        for field in self.query(Input):
            field.cursor_blink = blink
        payload = self.query_one(TextArea)
        payload.cursor_blink = blink
        payload.select_all()
        self.query_one("#name", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        try:
            request = validate(
                self.query_one("#queue", Select).value,
                self.query_one("#name", Input).value,
                self.query_one(TextArea).text,
                self.query_one("#delay", Input).value,
                self.query_one("#priority", Input).value,
            )
        except ValueError as exc:
            self.query_one("#error", Static).update(str(exc))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)
