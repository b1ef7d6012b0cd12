"""Redis over TLS with ACL users: a real ``redis-server`` serving TLS only, certificates
from a throwaway CA, the ``default`` user off, and the two users the README documents —
``worker`` (Lark's keys, the engine's commands) and ``viewer`` (read only).

The worker, the CLI and the API work through them with verification on; a wrong
password, an untrusted certificate and a forbidden write are clear errors that never
show the password.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner, Result

from lark_core.cli import app
from lark_core.errors import PermissionDenied, RedisUnavailable
from lark_core.project import Lark
from tests.helpers import running_worker, wait_until
from tests.redis_tls import (
    VIEWER_ACL,
    VIEWER_PASSWORD,
    WORKER_ACL,
    WORKER_PASSWORD,
    TLSRedis,
    creds,
    tls_server,
    write_tls_project,
)

JOBS = '''
from lark_core import Job


class Hello(Job):
    async def handle(self, payload):
        self.info("hello", payload)
        return {"hi": payload.get("n")}


class Boom(Job):
    queue = "emails"

    async def handle(self, payload):
        raise RuntimeError("smtp down")
'''

WRONG_PASSWORD = "wr0ng-Pw-5d1e"
SECRETS = (WORKER_PASSWORD, VIEWER_PASSWORD, WRONG_PASSWORD)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server() -> Iterator[TLSRedis]:
    with tls_server() as started:
        yield started


@pytest.fixture
def admin(server: TLSRedis) -> Iterator[redis.Redis]:
    """The admin user's client; the database starts empty for every test."""
    client = server.admin()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def cfg(tmp_path: Path, server: TLSRedis, admin: redis.Redis) -> Path:
    return write_tls_project(tmp_path / "proj", server, JOBS)


@pytest.fixture
def as_user(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Select the ACL user (and password) the config's ``${VAR}``s expand to."""

    def use(user: str, password: str | None = None) -> None:
        for name, value in creds(user, password).items():
            monkeypatch.setenv(name, value)

    return use


_runner = CliRunner()


def cli(*args: str) -> Result:
    return _runner.invoke(app, list(args))


def output(result: Result | subprocess.CompletedProcess[str]) -> str:
    return str(result.stdout) + str(result.stderr)


def no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def lark_core_cmd() -> list[str]:
    found = shutil.which("lark-core")
    return [found] if found else [sys.executable, "-m", "lark_core.cli"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*lark_core_cmd(), *args], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **env})


async def _with_project(cfg: Path, fn: Callable[[Lark], Any]) -> Any:
    project = Lark(config_path=cfg)
    try:
        return await fn(project)
    finally:
        await project.close()


def with_project(cfg: Path, fn: Callable[[Lark], Any]) -> Any:
    return asyncio.run(_with_project(cfg, fn))


def fail_one(cfg: Path, job_id: str) -> None:
    """A failed job in ``emails``, by a worker logged in as ``worker``."""

    async def run(project: Lark) -> None:
        q = project.queue("emails")
        await q.add("Boom", {}, job_id=job_id)
        async with running_worker(project, ["emails"]):
            await wait_until(lambda: _state_is(q, job_id, "failed"), what="the job to fail")

    with_project(cfg, run)


async def _state_is(q: Any, job_id: str, state: str) -> bool:
    rec = await q.get_job(job_id)
    return rec is not None and rec.state == state


# ----------------------------------------------------------------------------- the worker user


async def test_worker_user_processes_jobs_over_verified_tls(
        cfg: Path, as_user: Callable[..., None], admin: redis.Redis) -> None:
    as_user("worker")
    project = Lark(config_path=cfg)
    try:
        assert project.config.redis.tls is not None and project.config.redis.tls.verify
        q = project.queue("default")
        for n in range(5):
            await q.add("Hello", {"n": n}, job_id=f"j{n}")
        async with running_worker(project):
            await wait_until(lambda: _counts_are(q, completed=5), what="5 jobs completed")
        record = await q.get_job("j3")
        assert record is not None and record.return_value == {"hi": 3}
        assert (await q.get_job_logs("j3"))[0].endswith("hello {\"n\": 3}")
    finally:
        await project.close()
    assert admin.zcard("lark:{default}:completed") == 5
    assert all(str(key).startswith("lark:") for key in admin.keys("*"))


async def _counts_are(q: Any, **expected: int) -> bool:
    counts = await q.get_job_counts()
    return all(counts[k] == v for k, v in expected.items())


def test_cli_dispatch_worker_and_counts_through_tls_and_acl(cfg: Path) -> None:
    env = creds("worker")
    ids = []
    for n in range(3):
        result = _invoke_with(env, "dispatch", "Hello", "--payload", json.dumps({"n": n}),
                              "--config", str(cfg))
        assert result.exit_code == 0, output(result)
        ids.append(result.stdout.strip())
    worker = subprocess.Popen([*lark_core_cmd(), "worker", "--config", str(cfg)],
                              env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while _counts(cfg, env)["default"]["completed"] < 3:
            assert worker.poll() is None and time.monotonic() < deadline, "jobs not processed"
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert "rediss://worker:***@127.0.0.1" in err
    no_secret(out + err)
    shown = json.loads(_invoke_with(env, "show", ids[2], "--json", "--config", str(cfg)).stdout)
    assert shown["state"] == "completed" and shown["return_value"] == {"hi": 2}


def _invoke_with(env: dict[str, str], *args: str) -> Result:
    return _runner.invoke(app, list(args), env=env)


def _counts(cfg: Path, env: dict[str, str]) -> dict[str, Any]:
    result = _invoke_with(env, "counts", "--json", "--config", str(cfg))
    assert result.exit_code == 0, output(result)
    return dict(json.loads(result.stdout))


# ----------------------------------------------------------------------------- clear errors


def test_wrong_password_is_a_clear_error_without_the_password(cfg: Path) -> None:
    result = run_cli("counts", "--config", str(cfg), env=creds("worker", WRONG_PASSWORD))
    assert result.returncode == 1, output(result)
    assert result.stderr.startswith("error: Redis at rediss://worker:***@127.0.0.1:")
    assert "refused the credentials of user 'worker'" in result.stderr
    assert "invalid username-password pair" in result.stderr
    assert "Traceback" not in result.stderr
    no_secret(output(result))


def test_wrong_password_through_the_api(cfg: Path, as_user: Callable[..., None]) -> None:
    as_user("viewer", WRONG_PASSWORD)
    with pytest.raises(RedisUnavailable, match="refused the credentials of user 'viewer'") as info:
        with_project(cfg, lambda p: p.get_all_counts())
    no_secret(str(info.value))


def test_worker_with_wrong_password_logs_why_and_stops_on_sigterm(cfg: Path) -> None:
    """A worker retries forever (DESIGN), saying each time that the login was refused."""
    log = cfg.parent / "worker.log"
    with log.open("w") as sink:
        worker = subprocess.Popen([*lark_core_cmd(), "worker", "--config", str(cfg)],
                                  env={**os.environ, **creds("worker", WRONG_PASSWORD),
                                       "PYTHONUNBUFFERED": "1"},
                                  stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while "refused the credentials of user 'worker'" not in log.read_text():
                assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0, log.read_text()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    text = log.read_text()
    assert "Traceback" not in text
    no_secret(text)


def test_untrusted_certificate_is_a_clear_tls_error(tmp_path: Path, server: TLSRedis) -> None:
    cfg = write_tls_project(tmp_path / "other", server, JOBS, ca="other-ca.crt")
    result = run_cli("counts", "--config", str(cfg), env=creds("worker"))
    assert result.returncode == 1, output(result)
    assert f"cannot connect to Redis at rediss://worker:***@127.0.0.1:{server.port}/0" in result.stderr
    assert "TLS: the server's certificate is not trusted" in result.stderr
    assert "redis.tls.ca_file" in result.stderr
    assert "Traceback" not in result.stderr
    no_secret(output(result))


def test_verify_false_skips_the_certificate_check(tmp_path: Path, server: TLSRedis,
                                                  admin: redis.Redis,
                                                  as_user: Callable[..., None]) -> None:
    as_user("viewer")
    cfg = write_tls_project(tmp_path / "noverify", server, JOBS, verify=False)
    counts = with_project(cfg, lambda p: p.get_all_counts())
    assert counts["default"]["waiting"] == 0


def test_plain_redis_url_against_a_tls_port_fails_fast(tmp_path: Path, server: TLSRedis) -> None:
    cfg = tmp_path / "plain.yaml"
    cfg.write_text(f"redis:\n  url: redis://127.0.0.1:{server.port}/0\n")
    started = time.monotonic()
    result = cli("counts", "--config", str(cfg))
    assert result.exit_code == 1, output(result)
    assert "Redis at redis://127.0.0.1" in result.stderr
    assert time.monotonic() - started < 15


# ----------------------------------------------------------------------------- the viewer user


def test_viewer_reads_counts_and_lists(cfg: Path, as_user: Callable[..., None]) -> None:
    as_user("worker")
    fail_one(cfg, "mail-1")
    as_user("viewer")
    counts = json.loads(cli("counts", "--json", "--config", str(cfg)).stdout)
    assert counts["emails"]["failed"] == 1 and counts["emails"]["is_paused"] is False
    failed = cli("jobs", "failed", "--json", "--config", str(cfg))
    assert failed.exit_code == 0, output(failed)
    assert [j["id"] for j in json.loads(failed.stdout)] == ["mail-1"]
    shown = cli("show", "mail-1", "--config", str(cfg))
    assert shown.exit_code == 0 and "smtp down" in shown.stdout
    assert cli("workers", "--config", str(cfg)).exit_code == 0


@pytest.mark.parametrize(("args", "denied"), [
    (("retry", "mail-1"), "retry jobs"),
    (("retry", "--all"), "retry jobs"),
    (("pause", "emails"), "pause queues"),
    (("remove", "mail-1"), "remove jobs"),
    (("dispatch", "Hello"), "add jobs"),
])
def test_viewer_may_not_write(cfg: Path, as_user: Callable[..., None], admin: redis.Redis,
                              args: tuple[str, ...], denied: str) -> None:
    as_user("worker")
    fail_one(cfg, "mail-1")
    before = _snapshot(admin)
    as_user("viewer")
    result = cli(*args, "--config", str(cfg))
    assert result.exit_code == 1, output(result)
    assert result.stderr.startswith(f"error: user 'viewer' may not {denied} (Redis ACL:")
    assert "no permissions" in result.stderr
    assert "Traceback" not in output(result)
    no_secret(output(result))
    assert _snapshot(admin) == before


def _snapshot(admin: redis.Redis) -> dict[str, Any]:
    """Every key's type and content except the worker registry (heartbeats change it)."""
    read = {"hash": admin.hgetall, "list": lambda k: admin.lrange(k, 0, -1),
            "zset": lambda k: admin.zrange(k, 0, -1, withscores=True),
            "stream": lambda k: admin.xrange(k), "string": admin.get}
    return {str(key): read[str(admin.type(key))](key) for key in sorted(admin.keys("lark:{*"))}


def test_doctor_as_viewer_passes_and_says_what_it_could_not_check(
        cfg: Path, as_user: Callable[..., None]) -> None:
    as_user("viewer")
    result = cli("doctor", "--config", str(cfg))
    assert result.exit_code == 0, output(result)
    assert "PONG" in result.stdout and "CONFIG GET refused" in result.stdout


def test_readme_documents_the_tested_acl_rules() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"user lark-worker {WORKER_ACL.format(password='CHANGE-ME')}\n" in readme
    assert f"user lark-viewer {VIEWER_ACL.format(password='CHANGE-ME')}\n" in readme


def test_worker_as_viewer_refuses_to_start_saying_why(cfg: Path) -> None:
    result = run_cli("worker", "--config", str(cfg), env=creds("viewer"))
    assert result.returncode == 1, output(result)
    assert "error: user 'viewer' may not run a worker (Redis ACL:" in result.stderr
    assert "Traceback" not in result.stderr
    no_secret(output(result))


async def test_viewer_api_overview_works_and_writes_raise_permission_denied(
        cfg: Path, as_user: Callable[..., None], admin: redis.Redis) -> None:
    as_user("viewer")
    project = Lark(config_path=cfg)
    try:
        overview = await project.overview()
        assert set(overview.counts) == {"default", "emails"}
        with pytest.raises(PermissionDenied, match=r"user 'viewer' may not pause queues"):
            await project.queue("default").pause()
        with pytest.raises(PermissionDenied, match=r"may not add jobs"):
            await project.queue("default").add("Hello", {})
        with pytest.raises(PermissionDenied, match=r"user 'viewer' may not add jobs"):
            await asyncio.to_thread(project.queue("default").add_sync, "Hello", {})
    finally:
        await project.close()
    assert admin.dbsize() == 0
