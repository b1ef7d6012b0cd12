"""What the app injects into its screens: data source, supervisor, clock, settings.

Tests build a :class:`Services` with a fixed clock, a fake supervisor or a data
source over a prepared Redis, so every screen renders the same every run.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from lark_tui.datasource import DataSource
from lark_tui.supervisor import Supervisor

if TYPE_CHECKING:
    from textual.dom import DOMNode


@dataclass
class Services:
    """Everything a screen needs besides its own state."""

    data: DataSource
    supervisor: Supervisor
    #: epoch seconds; frozen in snapshot tests
    clock: Callable[[], float] = time.time
    #: this host's name, to tell local workers from remote ones
    hostname: str = field(default_factory=socket.gethostname)
    #: default concurrency for new workers (``worker.concurrency``)
    default_concurrency: int = 10
    #: seconds between refreshes of live data
    poll_interval: float = 1.0
    #: rows per page in the jobs list
    page_size: int = 50
    #: text cursors blink (off in snapshot tests)
    cursor_blink: bool = True
    #: install SIGHUP/SIGTERM handlers (only when running on a real terminal)
    handle_signals: bool = False


def services(node: DOMNode) -> Services:
    """The app's :class:`Services`, from any widget or screen."""
    return cast(Services, node.app.services)  # type: ignore[attr-defined]
