"""``lark-core``: every command against a real redis-server, via CliRunner and a few subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lark_core.cli import app
from lark_core.config import load_config
from lark_core.discovery import discover
from lark_core.embedded import stop_server
from lark_core.project import Lark
from lark_core.worker import Worker, worker_settings
from tests.conftest import write_project
from tests.redis_proc import RedisProc, require_redis

JOBS = '''
import asyncio
from lark_core import Job


class Echo(Job):
    async def handle(self, payload):
        self.info("echo", payload)
        return {"echo": payload}


class Boom(Job):
    async def handle(self, payload):
        raise RuntimeError("kaboom [boom]")


class Slow(Job):
    async def handle(self, payload):
        self.info("starting")
        await asyncio.sleep(payload.get("s", 1))
        self.info("finished")
        return "slept"


class Mail(Job):
    queue = "emails"

    async def handle(self, payload):
        return None
'''

QUEUES = ["default", "emails"]
SECRET = "s3cretpw"
UNREACHABLE = f"redis://:{SECRET}@127.0.0.1:1/0"

runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok(*args: str) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def as_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


@pytest.fixture
def cfg(tmp_path: Path, redis_url: str) -> str:
    return str(write_project(tmp_path / "proj", redis_url, {"jobs.py": JOBS}, queues=QUEUES))


def dispatch(cfg: str, name: str, *args: str) -> str:
    return ok("dispatch", name, "--config", cfg, *args).stdout.strip()


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def counts(cfg: str) -> dict[str, dict[str, Any]]:
    return as_json("counts", "--config", cfg)


@contextmanager
def worker_thread(cfg: str) -> Iterator[None]:
    """A real Worker on its own event loop in a thread (stopped like a first SIGTERM)."""
    config = load_config(cfg)
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def serve() -> None:
        project = Lark(config)
        box["worker"] = Worker(project, discover(config), None, worker_settings(config.worker))
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        try:
            await box["worker"].run()
        finally:
            await project.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        box["loop"].call_soon_threadsafe(box["worker"].request_stop)
        thread.join(15)


def lark_core_cmd() -> list[str]:
    found = shutil.which("lark-core")
    return [found] if found else [sys.executable, "-m", "lark_core.cli"]


# ----------------------------------------------------------------------------- dispatch


def test_dispatch_prints_id_and_json_shape(cfg: str) -> None:
    job_id = dispatch(cfg, "Echo", "--payload", '{"a": 1}')
    shown = as_json("show", job_id, "--config", cfg)
    assert shown["id"] == job_id and shown["queue"] == "default" and shown["name"] == "Echo"
    assert shown["payload"] == {"a": 1} and shown["state"] == "waiting" and shown["logs"] == []
    rec = as_json("dispatch", "Mail", "--config", cfg)  # the class's queue, found by discovery
    assert rec["queue"] == "emails" and rec["state"] == "waiting" and rec["payload"] == {}
    assert {"attempts_made", "max_attempts", "return_value", "stacktrace", "timestamp"} <= set(rec)
    assert "_queue" not in rec


def test_dispatch_options_delay_priority_job_id_promote(cfg: str) -> None:
    delayed = as_json("dispatch", "Echo", "--delay", "60000", "--priority", "5", "--config", cfg)
    assert delayed["state"] == "delayed" and delayed["priority"] == 5
    first = dispatch(cfg, "Echo", "--job-id", "order-1")
    assert first == "order-1" and dispatch(cfg, "Echo", "--job-id", "order-1") == "order-1"
    assert counts(cfg)["default"]["waiting"] == 1
    table = ok("jobs", "delayed", "--config", cfg).stdout
    assert delayed["id"] in table and "due in" in table
    ok("promote", delayed["id"], "--config", cfg)
    assert counts(cfg)["default"] == {"waiting": 2, "active": 0, "delayed": 0, "completed": 0,
                                      "failed": 0, "paused": 0, "is_paused": False}


@pytest.mark.parametrize(("args", "needle"), [
    (["Echo", "--payload", "{bad"], "--payload: invalid JSON"),
    (["Echo", "--payload", "NaN"], "--payload: invalid JSON"),
    (["Echo", "--delay", "-1"], "--delay"),
    (["Echo", "--priority", "99999999"], "--priority"),
    (["Echo", "--job-id", "has space"], "job_id"),
    (["Nope"], "no job named 'Nope'"),
    (["Echo", "--queue", "nope"], "queue 'nope' is not configured"),
])
def test_dispatch_bad_input_exits_2(cfg: str, args: list[str], needle: str) -> None:
    result = cli("dispatch", *args, "--config", cfg)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert "Traceback" not in result.output


def test_dispatch_by_name_with_queue_when_unknown_or_discovery_fails(cfg: str) -> None:
    result = ok("dispatch", "Elsewhere", "--queue", "emails", "--config", cfg)
    assert "warning" in result.stderr
    bad = Path(cfg).parent / "jobs" / "broken.py"
    bad.write_text("raise ImportError('nope')\n")
    result = cli("dispatch", "Echo", "--config", cfg)
    assert result.exit_code == 2 and "broken.py" in result.stderr and "--queue" in result.stderr
    ok("dispatch", "Echo", "--queue", "default", "--config", cfg)
    assert counts(cfg)["emails"]["waiting"] == 1 and counts(cfg)["default"]["waiting"] == 1


# ----------------------------------------------------------------------------- counts, jobs


def test_counts_table_and_json(cfg: str) -> None:
    dispatch(cfg, "Echo")
    dispatch(cfg, "Mail")
    data = counts(cfg)
    assert list(data) == ["default", "emails"]
    assert data["default"] == {"waiting": 1, "active": 0, "delayed": 0, "completed": 0,
                               "failed": 0, "paused": 0, "is_paused": False}
    assert list(as_json("counts", "--queue", "emails", "--config", cfg)) == ["emails"]
    table = ok("counts", "--config", cfg).stdout
    assert "default" in table and "emails" in table and "waiting" in table
    assert cli("counts", "--queue", "nope", "--config", cfg).exit_code == 2


def test_jobs_pages_with_limit_and_offset(cfg: str) -> None:
    ids = [dispatch(cfg, "Echo", "--payload", str(i)) for i in range(5)]
    page = as_json("jobs", "waiting", "--limit", "2", "--offset", "1", "--config", cfg)
    assert [r["id"] for r in page] == ids[1:3]
    result = ok("jobs", "waiting", "--limit", "3", "--config", cfg)
    assert all(i in result.stdout for i in ids[:3]) and ids[3] not in result.stdout
    assert "1-3 of 5 waiting" in result.stderr
    assert as_json("jobs", "failed", "--config", cfg) == []
    assert cli("jobs", "bogus", "--config", cfg).exit_code == 2


# ----------------------------------------------------------------------------- with a worker


def test_processing_show_logs_retry_clean_workers(cfg: str) -> None:
    echo = dispatch(cfg, "Echo", "--payload", '{"hi": "there"}')
    boom = dispatch(cfg, "Boom")
    with worker_thread(cfg):
        wait_until(lambda: counts(cfg)["default"]["completed"] == 1
                   and counts(cfg)["default"]["failed"] == 1)
        infos = as_json("workers", "--config", cfg)
        assert len(infos) == 1 and infos[0]["queues"] == ["default", "emails"]
        assert "running" in ok("workers", "--config", cfg).stdout
        slow = dispatch(cfg, "Slow", "--payload", '{"s": 0.5}')
        followed = ok("logs", slow, "--follow", "--config", cfg)
        assert "starting" in followed.stdout and "finished" in followed.stdout
        assert "completed" in followed.stderr
    shown = ok("show", echo, "--config", cfg).stdout
    assert '"echo"' in shown and "there" in shown and "INFO echo" in shown
    assert "INFO echo" in ok("logs", echo, "--config", cfg).stdout
    failed = as_json("jobs", "failed", "--config", cfg)
    assert [r["id"] for r in failed] == [boom] and "kaboom" in failed[0]["failed_reason"]
    assert "kaboom [boom]" in ok("jobs", "failed", "--config", cfg).stdout  # not read as markup
    assert "kaboom [boom]" in ok("show", boom, "--config", cfg).stdout
    assert "RuntimeError" in as_json("show", boom, "--config", cfg)["stacktrace"]
    ok("retry", echo, "--config", cfg)
    waiting = dispatch(cfg, "Echo")
    result = cli("retry", waiting, "--config", cfg)
    assert result.exit_code == 1 and "is not failed or completed" in result.stderr
    assert ok("retry", "--all", "--config", cfg).stdout.strip() == "1"
    assert cli("retry", "--config", cfg).exit_code == 2
    assert counts(cfg)["default"]["waiting"] == 3
    assert ok("clean", "default", "completed", "--grace", "0", "--config", cfg).stdout.strip() == "1"
    assert cli("clean", "default", "waiting", "--config", cfg).exit_code == 2


def test_remove_pause_resume(cfg: str) -> None:
    job = dispatch(cfg, "Echo")
    ok("remove", job, "--config", cfg)
    assert cli("show", job, "--config", cfg).exit_code == 1
    ok("pause", "default", "--config", cfg)
    assert counts(cfg)["default"]["is_paused"] is True
    dispatch(cfg, "Echo")
    assert "PAUSED" in ok("counts", "--config", cfg).stdout
    assert counts(cfg)["default"]["paused"] == 1
    ok("resume", "default", "--config", cfg)
    assert counts(cfg)["default"] == {"waiting": 1, "active": 0, "delayed": 0, "completed": 0,
                                      "failed": 0, "paused": 0, "is_paused": False}
    assert cli("pause", "nope", "--config", cfg).exit_code == 2


def test_unknown_and_ambiguous_ids_exit_1(cfg: str) -> None:
    result = cli("show", "missing-id", "--config", cfg)
    assert result.exit_code == 1 and "no job 'missing-id'" in result.stderr
    dispatch(cfg, "Echo", "--job-id", "twin")
    dispatch(cfg, "Mail", "--job-id", "twin")
    for command in ("show", "logs", "retry", "remove", "promote"):
        result = cli(command, "twin", "--config", cfg)
        assert result.exit_code == 1, command
        assert "default" in result.stderr and "emails" in result.stderr
    assert as_json("show", "twin", "--queue", "emails", "--config", cfg)["name"] == "Mail"


# ----------------------------------------------------------------------------- config & errors


def test_config_before_or_after_command_env_and_cwd(cfg: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    dispatch(cfg, "Echo")
    assert json.loads(ok("--config", cfg, "counts", "--json").stdout)["default"]["waiting"] == 1
    missing = str(tmp_path / "nowhere.yaml")
    after_wins = ok("--config", missing, "counts", "--json", "--config", cfg)
    assert json.loads(after_wins.stdout)["default"]["waiting"] == 1
    assert cli("--config", missing, "counts").exit_code == 2
    result = cli("counts", "--json", env={"LARK_CONFIG": cfg})
    assert result.exit_code == 0 and json.loads(result.stdout)["default"]["waiting"] == 1
    monkeypatch.chdir(Path(cfg).parent)
    assert json.loads(ok("counts", "--json").stdout)["default"]["waiting"] == 1


def test_bad_config_exits_2_naming_file_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "lark.config.yaml"
    path.write_text("jobs:\n  queues: [default]\n  options:\n    attempts: five\n")
    result = cli("counts", "--config", str(path))
    assert result.exit_code == 2
    assert str(path) in result.stderr and "jobs.options.attempts" in result.stderr
    result = cli("counts", "--config", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2 and "missing.yaml" in result.stderr


def test_unreachable_redis_fails_fast_with_masked_url(tmp_path: Path) -> None:
    cfg = str(write_project(tmp_path, UNREACHABLE, {"jobs.py": JOBS}, queues=QUEUES))
    for args in (["counts"], ["show", "x"], ["dispatch", "Echo"], ["jobs", "failed"]):
        started = time.monotonic()
        result = cli(*args, "--config", cfg)
        assert result.exit_code == 1, (args, result.output)
        assert time.monotonic() - started < 5
        assert "127.0.0.1:1" in result.stderr and SECRET not in result.output
        assert "Traceback" not in result.output
    for args in (["--help"], ["counts", "--help"], ["worker", "--help"]):
        assert SECRET not in cli(*args, env={"LARK_CONFIG": cfg}).output


def test_doctor_good_project_and_unreachable_redis(cfg: str, tmp_path: Path) -> None:
    dispatch(cfg, "Echo")
    result = ok("doctor", "--config", cfg)
    for needle in ("✓ config", "PONG", "Echo", "Mail", "1 waiting", "no live workers"):
        assert needle in result.stdout
    bad = str(write_project(tmp_path / "bad", UNREACHABLE, {"jobs.py": JOBS}, queues=QUEUES))
    result = cli("doctor", "--config", bad)
    assert result.exit_code == 1 and "✗" in result.stdout and SECRET not in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("jobs: [")
    assert cli("doctor", "--config", str(broken)).exit_code == 1


@pytest.mark.parametrize(("extra", "needles"), [
    (["--maxmemory-policy", "allkeys-lru", "--appendonly", "no"],
     ["! maxmemory-policy is allkeys-lru", "! AOF persistence is off"]),
    (["--rename-command", "CONFIG", ""], ["! CONFIG GET refused"]),
])
def test_doctor_warns_about_eviction_aof_and_refused_config(tmp_path: Path, extra: list[str],
                                                           needles: list[str]) -> None:
    require_redis()
    server = RedisProc(extra_args=extra)
    server.start()
    try:
        cfg = str(write_project(tmp_path, server.url, {"jobs.py": JOBS}, queues=QUEUES))
        result = ok("doctor", "--config", cfg)
        assert all(n in result.stdout for n in needles), result.stdout
    finally:
        server.cleanup()


# ----------------------------------------------------------------------------- init, redis


def test_init_scaffolds_and_refuses_to_overwrite(tmp_path: Path) -> None:
    project = tmp_path / "new"
    (project).mkdir()
    (project / ".gitignore").write_text("*.pyc")
    ok("init", str(project))
    config = load_config(project / "lark.config.yaml")
    assert config.redis.embedded and config.jobs.queues == ("default",)
    assert "Hello" in discover(config).jobs
    assert (project / ".gitignore").read_text() == "*.pyc\n.lark/\n"
    result = cli("init", str(project))
    assert result.exit_code == 1 and "--force" in result.stderr
    ok("init", str(project), "--force")
    assert (project / ".gitignore").read_text().count(".lark/") == 1


def test_redis_status_and_stop_for_a_url_project(cfg: str, tmp_path: Path) -> None:
    result = ok("redis", "status", "--config", cfg)
    assert "version" in result.stdout and "up" in result.stdout
    result = cli("redis", "stop", "--config", cfg)
    assert result.exit_code == 1 and "embedded" in result.stderr
    bad = str(write_project(tmp_path / "bad", UNREACHABLE, {}))
    result = cli("redis", "status", "--config", bad)
    assert result.exit_code == 1 and SECRET not in result.output


def test_redis_status_and_stop_for_an_embedded_project(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server")
    project = tmp_path / "emb"
    ok("init", str(project))
    cfg = str(project / "lark.config.yaml")
    try:
        result = cli("redis", "status", "--config", cfg)
        assert result.exit_code == 1 and "not running" in result.stdout
        ok("dispatch", "Hello", "--config", cfg)  # starts the managed server on demand
        assert "running (pid" in ok("redis", "status", "--config", cfg).stdout
        assert "stopped" in ok("redis", "stop", "--config", cfg).stderr
        assert cli("redis", "status", "--config", cfg).exit_code == 1
    finally:
        stop_server(project)


# ----------------------------------------------------------------------------- real processes


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*lark_core_cmd(), *args], capture_output=True, text=True, timeout=30,
                          **kwargs)


def test_entry_point_exit_codes(tmp_path: Path) -> None:
    cfg = str(write_project(tmp_path, UNREACHABLE, {"jobs.py": JOBS}, queues=QUEUES))
    down = run_cli("counts", "--config", cfg)
    assert down.returncode == 1 and down.stderr.startswith("error: cannot reach Redis")
    assert SECRET not in down.stdout + down.stderr
    assert run_cli("counts", "--config", str(tmp_path / "nope.yaml")).returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_worker_finishes_its_job_on_sigterm_and_exits_0(cfg: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*lark_core_cmd(), "worker", "--config", cfg, "--queue", "default",
                             "--shutdown-grace", "10"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job = dispatch(cfg, "Slow", "--payload", '{"s": 1}')
        wait_until(lambda: counts(cfg)["default"]["active"] == 1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert as_json("show", job, "--config", cfg)["state"] == "completed"


def test_worker_with_broken_jobs_exits_2_naming_the_file(cfg: str) -> None:
    (Path(cfg).parent / "jobs" / "broken.py").write_text("import nonexistent_module_xyz\n")
    result = run_cli("worker", "--config", cfg)
    assert result.returncode == 2 and "broken.py" in result.stderr
    assert "Traceback" not in result.stderr
