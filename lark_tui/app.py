"""``lark-tui``: the terminal console. ``main()`` parses, loads the config, runs the app."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen

from lark_tui.actions import perform
from lark_tui.keys import described, display, own_nodes
from lark_tui.messages import RedisStatus
from lark_tui.screens.dispatch import DispatchDialog, DispatchRequest
from lark_tui.screens.help import HelpScreen
from lark_tui.screens.jump import JumpDialog
from lark_tui.screens.main import MainScreen
from lark_tui.services import Services

THEME = "textual-dark"


class LarkApp(App[int]):
    """The console. Everything it reads or does goes through ``services``."""

    CSS_PATH = "app.tcss"
    TITLE = "lark"
    #: a zoomed panel keeps the status line (and its Redis banner) and the footer
    ALLOW_IN_MAXIMIZED_VIEW = "StatusBar, Footer"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("g", "goto_job", "Go to job", show=False),
        Binding("n", "dispatch", "Dispatch job", show=False),
    ]

    redis_error: reactive[str | None] = reactive(None, init=False)

    def __init__(self, services: Services, warnings: Sequence[str] = (),
                 start_workers: int = 0) -> None:
        super().__init__()
        self.services = services
        self.warnings = tuple(warnings)
        self.start_workers = start_workers
        self.redis_down_since: float | None = None
        self._quitting = False
        self.theme = THEME

    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        if self.services.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGHUP, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal)
        for warning in self.warnings:
            self.notify(warning, title="Config warning", severity="warning", timeout=10)
        if self.start_workers:
            svc = self.services
            svc.supervisor.start(svc.data.queue_names, svc.default_concurrency,
                                 self.start_workers)

    def _on_signal(self) -> None:
        """SIGHUP (terminal gone) or SIGTERM: leave now; workers are stopped on the way out."""
        self.exit(0)

    async def on_unmount(self) -> None:
        await asyncio.to_thread(self.services.supervisor.shutdown)
        with contextlib.suppress(Exception):
            await self.services.data.close()

    # -- Redis health -----------------------------------------------------------
    def on_redis_status(self, message: RedisStatus) -> None:
        if message.error is None:
            data = self.services.data
            if self.redis_error is not None:
                note = f"\n{data.revived}" if data.revived else ""
                self.notify(f"Reconnected to {data.redis_url}{note}", title="Redis",
                            timeout=10 if note else 5)
            data.revived = None
            self.redis_down_since = None
        elif self.redis_down_since is None:
            self.redis_down_since = self.services.clock()
        self.redis_error = message.error

    # -- global actions ---------------------------------------------------------
    async def action_quit(self) -> None:
        supervisor = self.services.supervisor
        if self._quitting or not supervisor.running:
            self.exit(0)
            return
        self._quitting = True
        self.notify(f"Stopping {supervisor.running} worker(s) gracefully: in-flight jobs "
                    "finish first. q again quits now (they still stop).",
                    title="Quitting", timeout=120)
        self.run_worker(self._stop_then_exit, thread=True, group="quit")

    def _stop_then_exit(self) -> None:
        self.services.supervisor.shutdown()
        self.call_from_thread(self.exit, 0)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def _current_queue(self) -> str | None:
        return getattr(self.screen, "current_queue", None)

    def action_goto_job(self) -> None:
        self.push_screen(JumpDialog(), self._goto_job)

    def _goto_job(self, job_id: str | None) -> None:
        from lark_tui.screens.job_detail import JobDetailScreen

        if job_id:
            perform(self, self.services.data.find_job(job_id),
                    then=lambda job: self.push_screen(JobDetailScreen(job.queue, job.id, job)),
                    what="Go to job")

    def action_dispatch(self) -> None:
        dialog = DispatchDialog(self.services.data.queue_names, self._current_queue())
        self.push_screen(dialog, self._dispatch)

    def _dispatch(self, request: DispatchRequest | None) -> None:
        if request is None:
            return
        coro = self.services.data.dispatch(request.queue, request.name, request.payload,
                                           request.delay_ms, request.priority)
        perform(self, coro, lambda job_id: f"Job {job_id} added to {request.queue}",
                what="Dispatch")

    # -- command palette: every action by name -----------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        titles: set[str] = set()
        for node, binding in described([*own_nodes(screen), self]):
            if node.check_action(binding.action.split("(")[0], ()) is not False:
                titles.add(binding.description)
                yield SystemCommand(binding.description, f"key: {display(binding)}",
                                    partial(self.run_action, binding.action, node))
        for command in super().get_system_commands(screen):
            if command.title not in titles:
                yield command

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Global keys stay out of the way while a dialog is open."""
        global_keys = ("quit", "help", "goto_job", "dispatch")
        return not (action in global_keys and isinstance(self.screen, ModalScreen))


def config_path(option: str | None) -> Path:
    """``--config``, else ``$LARK_CONFIG``, else ``./lark.config.yaml``."""
    return Path(option or os.environ.get("LARK_CONFIG") or "lark.config.yaml")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lark-tui", description="Terminal console for Lark job queues.")
    parser.add_argument("--config", metavar="PATH",
                        help="config file (default: $LARK_CONFIG, else ./lark.config.yaml)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="start N local workers for every queue at launch")
    return parser.parse_args(argv)


def fail(message: str, code: int) -> None:
    print(f"lark-tui: {message}", file=sys.stderr)
    raise SystemExit(code)


def build(path: Path) -> tuple[Services, tuple[str, ...]]:
    """Services for the project at ``path``; exits 2 on a config problem."""
    from lark_core import Lark
    from lark_core.config import load_config
    from lark_core.errors import ConfigError, LarkError
    from lark_tui.datasource import LarkDataSource
    from lark_tui.supervisor import Supervisor, worker_command

    if not path.is_file():
        fail(f"no config at {path} (give --config PATH, set $LARK_CONFIG, or run in a "
             "project folder)", 2)
    try:
        config = load_config(path)
    except ConfigError as exc:
        problems = "\n".join(f"  {p}" for p in exc.problems)
        fail(f"invalid config {path}:\n{problems}", 2)
    try:
        lark = Lark(config)
    except LarkError as exc:
        fail(str(exc), 1)
    data = LarkDataSource(lark, config_path=str(path))
    supervisor = Supervisor(worker_command(path.resolve()), cwd=str(path.resolve().parent),
                            grace_s=config.worker.shutdown_grace_s)
    svc = Services(data, supervisor, default_concurrency=config.worker.concurrency,
                   handle_signals=True)
    return svc, tuple(config.warnings)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    svc, warnings = build(config_path(args.config))
    app = LarkApp(svc, warnings, start_workers=max(0, args.workers))
    try:
        app.run()
    finally:
        if svc.supervisor.running:
            with contextlib.suppress(OSError):
                print(f"lark-tui: stopping {svc.supervisor.running} worker(s) gracefully…",
                      file=sys.stderr)
            svc.supervisor.shutdown()
    raise SystemExit(app.return_code or 0)


if __name__ == "__main__":
    main()
