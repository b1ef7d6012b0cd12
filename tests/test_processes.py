"""Real worker processes (``lark-core worker --config P``, or ``init_queues(P)`` where the
CLI is missing) on one queue: exactly-once under contention, SIGKILL mid-job, SIGTERM."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis

from lark_core.project import Lark
from tests.conftest import write_project
from tests.helpers import check_consistency, wait_state, wait_until

JOBS = '''
import asyncio
import os
import time

import redis

from lark_core import Job

R = redis.Redis.from_url({url!r})


class Record(Job):
    async def handle(self, payload):
        R.rpush("test:done", f"{{payload['i']}}:{{os.getpid()}}")
        return payload["i"]


class Sleepy(Job):
    async def handle(self, payload):
        R.rpush("test:started", f"{{self.job_id}}:{{os.getpid()}}")
        await asyncio.sleep(payload["seconds"])
        R.rpush("test:done", self.job_id)
        return "slept"


class SyncSleepy(Job):
    def handle(self, payload):
        R.rpush("test:started", f"{{self.job_id}}:{{os.getpid()}}")
        time.sleep(payload["seconds"])
        R.rpush("test:done", self.job_id)
        return "slept"
'''

WORKER_CONFIG = "worker:\n  lock_ms: 1000\n  stalled_interval_ms: 500\n  shutdown_grace_s: 30\n"


@functools.cache
def worker_command() -> tuple[str, ...]:
    """``lark-core worker --config`` when the CLI has it, else the equivalent init_queues."""
    exe = shutil.which("lark-core")
    if exe:
        probe = subprocess.run([exe, "worker", "--help"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return (exe, "worker", "--config")
    return (sys.executable, "-c",
            "import sys; from lark_core import init_queues; sys.exit(init_queues(sys.argv[1]))")


class Workers:
    """Worker processes started by one test; whatever is left is killed at the end."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.procs)}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen([*worker_command(), str(self.config)], stdout=fh,
                                    stderr=subprocess.STDOUT, cwd=self.config.parent)
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def by_pid(self, pid: int) -> subprocess.Popen[bytes]:
        return next(p for p in self.procs if p.pid == pid)

    @staticmethod
    def output(proc: subprocess.Popen[bytes]) -> str:
        return proc.log.read_text(errors="replace")  # type: ignore[attr-defined]

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def side(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test's database, for the jobs' side effects."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
async def project(tmp_path: Path, redis_url: str) -> AsyncIterator[Lark]:
    cfg = write_project(tmp_path, redis_url, {"side.py": JOBS.format(url=redis_url)},
                        extra=WORKER_CONFIG)
    p = Lark(config_path=cfg)
    yield p
    await p.close()


@pytest.fixture
def workers(project: Lark, tmp_path: Path) -> Iterator[Workers]:
    assert project.config.source is not None
    w = Workers(tmp_path / "lark.config.yaml", tmp_path)
    yield w
    w.cleanup()


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    await wait_until(lambda: proc.poll() is not None, timeout, what=f"worker {proc.pid} to exit")
    return int(proc.returncode)


async def wait_registered(project: Lark, n: int, workers: Workers) -> None:
    async def ready() -> bool:
        for p in workers.procs:
            if p.poll() is not None:
                raise AssertionError(f"worker exited early:\n{workers.output(p)}")
        return len(await project.list_workers()) >= n

    await wait_until(ready, timeout=30, what=f"{n} worker(s) to register")


def in_log(workers: Workers, proc: subprocess.Popen[bytes], text: str) -> Callable[[], bool]:
    return lambda: text in workers.output(proc)


async def test_three_workers_run_each_job_exactly_once(project: Lark, workers: Workers,
                                                       side: redis.Redis) -> None:
    queue = project.queue("default")
    procs = [workers.start() for _ in range(3)]
    await wait_registered(project, 3, workers)
    total = 2000
    for start in range(0, total, 250):
        await queue.add_bulk([{"name": "Record", "payload": {"i": i}}
                              for i in range(start, start + 250)])

    async def all_done() -> bool:
        return (await queue.get_job_counts())["completed"] == total

    await wait_until(all_done, timeout=60, what="every job to complete")
    done = [x.split(":") for x in side.lrange("test:done", 0, -1)]
    seen = Counter(int(i) for i, _pid in done)
    assert len(seen) == total and set(seen) == set(range(total))
    assert [i for i, n in seen.items() if n != 1] == []
    assert len({pid for _i, pid in done}) >= 2  # the work was shared
    counts = await check_consistency(queue)
    assert counts == {"waiting": 0, "active": 0, "delayed": 0, "completed": total, "failed": 0,
                      "paused": 0}
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        assert await wait_exit(p, 30) == 0, workers.output(p)
    assert await project.list_workers() == []


async def test_a_worker_killed_mid_job_its_job_is_finished_by_another(
        project: Lark, workers: Workers, side: redis.Redis) -> None:
    queue = project.queue("default")
    workers.start()
    workers.start()
    await wait_registered(project, 2, workers)
    job = await queue.add("Sleepy", {"seconds": 2})
    await wait_until(lambda: side.llen("test:started") == 1, timeout=15, what="the job to start")
    job_id, pid = side.lindex("test:started", 0).rsplit(":", 1)  # type: ignore[union-attr]
    assert job_id == job.id
    victim = workers.by_pid(int(pid))
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)

    await wait_state(queue, job.id, "completed", timeout=30)
    runs = side.lrange("test:started", 0, -1)
    assert len(runs) == 2 and runs[1].split(":")[1] != pid
    assert side.lrange("test:done", 0, -1) == [job.id]  # the killed run never finished
    done = await queue.get_job(job.id)
    assert done is not None and done.return_value == "slept"
    assert done.stalled_count == 1 and done.attempts_made == 1
    counts = await check_consistency(queue)
    assert counts["active"] == 0 and counts["waiting"] == 0 and counts["completed"] == 1
    survivor = next(p for p in workers.procs if p is not victim)
    survivor.send_signal(signal.SIGTERM)
    assert await wait_exit(survivor, 30) == 0


async def test_a_job_stalling_too_often_is_failed(project: Lark, workers: Workers,
                                                  side: redis.Redis) -> None:
    queue = project.queue("default")
    for _ in range(3):
        workers.start()
    await wait_registered(project, 3, workers)
    job = await queue.add("Sleepy", {"seconds": 30})
    for run in (1, 2):  # max_stalls is 1: the first stall is recovered, the second fails it
        await wait_until(lambda run=run: side.llen("test:started") == run, timeout=15,
                         what=f"run {run} to start")
        pid = int(side.lindex("test:started", run - 1).rsplit(":", 1)[1])  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        workers.by_pid(pid).wait(10)
    await wait_state(queue, job.id, "failed", timeout=15)
    failed = await queue.get_job(job.id)
    assert failed is not None and "stalled" in (failed.failed_reason or "")
    assert failed.stalled_count == 2
    assert side.llen("test:done") == 0 and side.llen("test:started") == 2
    counts = await check_consistency(queue)
    assert counts["failed"] == 1 and counts["active"] == 0 and counts["waiting"] == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_sigterm_lets_the_running_job_finish(project: Lark, workers: Workers,
                                                   side: redis.Redis, sig: int) -> None:
    queue = project.queue("default")
    proc = workers.start()
    await wait_registered(project, 1, workers)
    job = await queue.add("Sleepy", {"seconds": 3})
    await wait_until(lambda: side.llen("test:started") == 1, timeout=15, what="the job to start")
    t0 = time.monotonic()
    proc.send_signal(sig)
    await wait_until(in_log(workers, proc, "stopping"), timeout=10, what="the stop to be seen")
    queued_after = await queue.add("Record", {"i": 1})
    assert await wait_exit(proc, 20) == 0, workers.output(proc)
    assert time.monotonic() - t0 >= 1.5  # it waited for the job
    done = await queue.get_job(job.id)
    assert done is not None and done.state == "completed" and done.return_value == "slept"
    assert side.lrange("test:done", 0, -1) == [job.id]
    assert (await queue.get_job(queued_after.id)).state == "waiting"  # type: ignore[union-attr]
    counts = await check_consistency(queue)
    assert counts["active"] == 0


@pytest.mark.parametrize("name", ["Sleepy", "SyncSleepy"])
async def test_second_sigterm_puts_the_job_back(project: Lark, workers: Workers,
                                                side: redis.Redis, name: str) -> None:
    queue = project.queue("default")
    proc = workers.start()
    await wait_registered(project, 1, workers)
    job = await queue.add(name, {"seconds": 60})
    await wait_until(lambda: side.llen("test:started") == 1, timeout=15, what="the job to start")
    proc.send_signal(signal.SIGTERM)
    await wait_until(in_log(workers, proc, "stopping"), timeout=10, what="the first signal")
    proc.send_signal(signal.SIGTERM)
    assert await wait_exit(proc, 15) == 0, workers.output(proc)
    back = await queue.get_job(job.id)
    assert back is not None and back.state == "waiting"
    assert back.attempts_made == 0 and back.stalled_count == 0
    assert side.llen("test:done") == 0
    counts = await check_consistency(queue)
    assert counts["waiting"] == 1 and counts["active"] == 0
    assert await project.list_workers() == []
