"""Bad days: config errors, Redis lost and back, a terminal hang-up with workers running."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_project
from tests.redis_proc import RedisProc, require_redis
from tests.tui.conftest import pids_alive, real_app, settle, until
from tests.tui.fakes import NOW

ROOT = Path(__file__).resolve().parents[2]
MAIN = "from lark_tui.app import main; main()"


def run_tui(*args: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=30, stdin=subprocess.DEVNULL)


def test_bad_config_is_an_error_message_and_exit_2(tmp_path: Path) -> None:
    config = write_project(tmp_path, "redis://127.0.0.1:1/0", {})
    config.write_text(config.read_text().replace("attempts: 1", "attempts: five"))
    result = run_tui("--config", str(config))
    assert result.returncode == 2
    assert "jobs.options.attempts" in result.stderr and "five" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_config_exit_2_and_lark_config_is_honoured(tmp_path: Path) -> None:
    result = run_tui(cwd=tmp_path)
    assert result.returncode == 2 and "no config at lark.config.yaml" in result.stderr
    result = run_tui(env={"LARK_CONFIG": str(tmp_path / "elsewhere.yaml")}, cwd=tmp_path)
    assert result.returncode == 2 and "elsewhere.yaml" in result.stderr
    assert "Traceback" not in result.stderr


async def test_redis_lost_while_running_then_recovered(tmp_path: Path,
                                                       fresh_redis: RedisProc) -> None:
    from lark_core import Lark
    from lark_core.config import load_config

    config = write_project(tmp_path, fresh_redis.url, {}, queues=["default"])
    app = real_app(config, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.redis_error is None
        await asyncio.to_thread(fresh_redis.kill)
        await until(pilot, lambda: app.redis_error is not None, what="banner")
        banner = str(app.screen.query_one("#status").render())
        assert "Redis unreachable" in banner and f"127.0.0.1:{fresh_redis.port}" in banner
        await pilot.press("down", "up")  # input is still served while Redis is away
        await asyncio.to_thread(fresh_redis.start)
        lark = Lark(load_config(config))
        await lark.queues["default"].add("Hello", {})
        await lark.close()
        await until(pilot, lambda: app.redis_error is None, timeout=15, what="recovery")
        table = app.screen.query_one("#queues")
        await until(pilot, lambda: table.overview.queues[0].waiting == 1, what="fresh data")
        assert "Redis unreachable" not in str(app.screen.query_one("#status").render())


class Terminal:
    """``lark-tui`` on a pseudo-terminal, its screen output drained in a thread."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color",
               "COLUMNS": "80", "LINES": "24"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execvpe(sys.executable, [sys.executable, "-c", MAIN, *args], env)
        self.output = bytearray()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        return None

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.mark.timeout(60)
async def test_sighup_stops_spawned_workers_gracefully(project: Path, lark: Any) -> None:
    """An SSH hang-up: the console exits and its workers stop (SIGTERM), none orphaned."""
    term = Terminal(["--config", str(project), "--workers", "2"])
    try:
        deadline = time.monotonic() + 30
        while len(workers := await lark.list_workers()) < 2:
            assert time.monotonic() < deadline, term.output[-2000:].decode(errors="replace")
            await asyncio.sleep(0.1)
        pids = [w.pid for w in workers]
        os.kill(term.pid, signal.SIGHUP)
        code = await asyncio.to_thread(term.wait, 30)
        assert code is not None, "lark-tui did not exit on SIGHUP"
        assert pids_alive(pids) == []
        assert await lark.list_workers() == []  # they deregistered: a graceful stop
    finally:
        term.kill()


@pytest.mark.timeout(60)
async def test_killed_embedded_redis_is_started_again_by_the_console(tmp_path: Path) -> None:
    """``embedded: true``: the server is started by whoever needs it; when it is killed
    under a running console, the console starts it again and says so, then recovers."""
    import psutil

    from lark_core.embedded import server_status, stop_server

    require_redis()
    config = write_project(tmp_path / "p", "unused", {}, queues=["default"])
    config.write_text(config.read_text().replace("  url: unused", "  embedded: true"))
    project = config.parent
    app = real_app(config, clock=lambda: NOW)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.redis_error is None
            pid = server_status(project).pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(psutil.Process(pid).wait, 10)
            await until(pilot, lambda: app.redis_error is not None, what="banner")
            await until(pilot, lambda: "started it again" in (app.redis_error or ""),
                        timeout=15, what="restart said in the banner")
            await until(pilot, lambda: app.redis_error is None, timeout=15, what="recovery")
            status = server_status(project)
            assert status.running and status.pid not in (None, pid)
    finally:
        stop_server(project)
