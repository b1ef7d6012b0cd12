"""The engine on a real 3-master Redis Cluster (``redis: {cluster: true, url: <a node>}``).

Every test here runs the engine's scripts with a ``#!lua`` first line (see
``strict_scripts``): Redis 7 then refuses any command in a script that touches a key
outside the slot of the keys the script declared — including an undeclared key that
happens to live on the same node, which plain EVAL scripts are allowed to touch and
which would break after resharding.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from lark_core import scripts
from lark_core.discovery import discover
from lark_core.keys import QueueKeys
from lark_core.project import Lark
from lark_core.runner import QueueRunner
from lark_core.scripts import Call, LuaScript
from lark_core.settings import WorkerConfig
from lark_core.worker import Worker
from tests.conftest import write_project
from tests.redis_cluster import RedisClusterProc, require_cluster_support

# one queue on each of the three masters (slots 5718, 3728 and 13018)
QUEUES = ["default", "emails", "sms"]

JOBS = {
    "cluster_jobs.py": '''
import asyncio
import os

from lark_core import Job


class Echo(Job):
    queue = "default"

    async def handle(self, payload):
        await asyncio.sleep(payload.get("sleep", 0))
        self.info("echo", payload)
        await self.update_progress(100)
        return {"echo": payload}


class Mail(Job):
    queue = "emails"

    def handle(self, payload):
        self.info("mailing", payload.get("to"))
        return "sent"


class Text(Job):
    queue = "sms"

    async def handle(self, payload):
        return "texted"


class Flaky(Job):
    queue = "default"
    attempts = 2
    backoff = {"type": "fixed", "delay": 100}

    async def handle(self, payload):
        if not os.path.exists(payload["flag"]):
            raise RuntimeError("flag file missing")
        return "ok"
''',
}


def _strict(s: LuaScript) -> LuaScript:
    text = "#!lua\n" + s.text
    return LuaScript(s.name, s.numkeys, text, hashlib.sha1(text.encode()).hexdigest())


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterProc]:
    require_cluster_support()
    proc = RedisClusterProc()
    try:
        proc.start()
    except RuntimeError as exc:
        proc.cleanup()
        import os

        if os.environ.get("CI"):
            pytest.fail(f"could not start a Redis Cluster: {exc}")
        pytest.skip(f"this redis-server cannot run a cluster: {exc}")
    yield proc
    proc.cleanup()


@pytest.fixture(autouse=True)
def strict_scripts(monkeypatch: pytest.MonkeyPatch) -> dict[str, LuaScript]:
    """Load every script with a ``#!lua`` shebang: Redis enforces one slot per script."""
    strict = {name: _strict(s) for name, s in scripts.load_scripts().items()}
    monkeypatch.setattr(scripts, "load_scripts", lambda: strict)
    return strict


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Every script call the engine makes (recorded as its arguments are built)."""
    seen: list[Call] = []
    argv = Call.argv

    def recording(self: Call) -> list[Any]:
        seen.append(self)
        return argv(self)

    monkeypatch.setattr(Call, "argv", recording)
    return seen


@pytest.fixture
async def project(cluster: RedisClusterProc, tmp_path: Path) -> AsyncIterator[Lark]:
    cluster.flushall()
    cfg = write_project(tmp_path, cluster.url, JOBS, queues=QUEUES, extra="  cluster: true\n")
    lark = Lark(config_path=cfg)
    yield lark
    await lark.close()


def start_worker(project: Lark, **settings: Any) -> tuple[Worker, asyncio.Task[int]]:
    base = replace(WorkerConfig(), concurrency=4, lock_ms=5000, stalled_interval_ms=200,
                   shutdown_grace_s=5)
    worker = Worker(project, discover(project.config), settings=replace(base, **settings))
    return worker, asyncio.create_task(worker.run())


async def stop_worker(worker: Worker, task: asyncio.Task[int], force: bool = False) -> None:
    worker.request_force_stop() if force else worker.request_stop()
    done, _ = await asyncio.wait({task}, timeout=15)
    if not done:
        stacks = [f"{t!r}\n" + "\n".join(_awaiting(t.get_coro())) for t in asyncio.all_tasks()]
        task.cancel()
        raise AssertionError("worker did not stop within 15 s; tasks:\n" + "\n".join(stacks))
    assert task.result() == 0


def _awaiting(coro: Any) -> list[str]:
    """Where a coroutine is suspended, down the chain of awaits (for a hang report)."""
    lines = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            what = frame.f_locals.get("what", "")
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name} {what}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines


async def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value {value!r}")
        await asyncio.sleep(0.05)


def slot_owner(cluster: RedisClusterProc) -> Callable[[int], int]:
    client = redis.Redis(port=cluster.ports[0], decode_responses=True)
    try:
        ranges = [(int(s[0]), int(s[1]), int(s[2][1])) for s in client.execute_command("CLUSTER", "SLOTS")]
    finally:
        client.close()
    return lambda slot: next(port for lo, hi, port in ranges if lo <= slot <= hi)


def assert_keys_in_queue_slots(cluster: RedisClusterProc, queues: list[str]) -> int:
    """Every ``lark:{q}:…`` key lives in ``{q}``'s slot on the node owning it; returns how many."""
    owner = slot_owner(cluster)
    n = 0
    for port in cluster.ports:
        client = redis.Redis(port=port, decode_responses=True)
        try:
            for key in client.scan_iter(count=1000):
                m = re.match(r"lark:\{([^}]*)\}:", key)
                if m is None:
                    assert key.startswith(("lark:workers", "lark:worker:")), key
                    continue
                assert m.group(1) in queues, key
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                assert slot == key_slot(f"{{{m.group(1)}}}".encode()), key
                assert owner(slot) == port, key
                n += 1
        finally:
            client.close()
    return n


# --------------------------------------------------------------------------- the fixture itself


def test_queues_spread_over_all_three_masters(cluster: RedisClusterProc) -> None:
    owner = slot_owner(cluster)
    assert {owner(key_slot(f"{{{q}}}".encode())) for q in QUEUES} == set(cluster.ports)


def test_strict_scripts_catch_a_stray_key_on_the_same_node(cluster: RedisClusterProc) -> None:
    """The guard the other tests rely on: Redis rejects an undeclared key in another slot."""
    cluster.flushall()
    owner = slot_owner(cluster)
    home = key_slot(b"{emails}")
    stray = next(q for q in (f"q{i}" for i in range(1000))
                 if owner(key_slot(f"{{{q}}}".encode())) == owner(home)
                 and key_slot(f"{{{q}}}".encode()) != home)
    body = f"redis.call('SET', KEYS[1], 1); redis.call('SET', 'lark:{{{stray}}}:x', 1); return 1"
    client = redis.Redis(port=owner(home), decode_responses=True)
    try:
        assert client.eval(body, 1, "lark:{emails}:a") == 1  # plain EVAL: silently allowed
        with pytest.raises(redis.ResponseError, match="same slot"):
            client.eval("#!lua\n" + body, 1, "lark:{emails}:b")
    finally:
        client.close()
        cluster.flushall()


def test_sync_client_is_a_cluster_client(project: Lark) -> None:
    from redis.cluster import RedisCluster

    assert isinstance(project.connection.sync_client(), RedisCluster)
    rec = project.queue("sms").add_sync("Text", {"n": 1})
    assert project.queue("sms").add_sync("Text", {"n": 1}, job_id=rec.id).id == rec.id


# --------------------------------------------------------------------------- engine behaviours


async def test_add_and_counts_across_slots(project: Lark) -> None:
    await project.queue("default").add("Echo", {"n": 1})
    await project.queue("default").add("Echo", {"n": 2}, delay=60_000)
    await project.queue("emails").add_bulk([{"name": "Mail", "payload": {"to": f"u{i}"}}
                                            for i in range(5)])
    await project.queue("sms").add("Text", {}, job_id="t-1")
    assert (await project.queue("sms").add("Text", {}, job_id="t-1")).id == "t-1"
    await project.queue("sms").pause()
    counts = await project.get_all_counts()
    assert counts["default"] == {"waiting": 1, "active": 0, "delayed": 1, "completed": 0,
                                 "failed": 0, "paused": 0, "is_paused": False}
    assert counts["emails"]["waiting"] == 5
    assert counts["sms"]["paused"] == 1 and counts["sms"]["is_paused"] is True
    assert await project.queue("emails").get_job_counts() == {
        "waiting": 5, "active": 0, "delayed": 0, "completed": 0, "failed": 0, "paused": 0}
    metrics = await project.get_all_metrics(5)
    assert set(metrics) == set(QUEUES)


async def test_two_workers_process_every_job_once(project: Lark, cluster: RedisClusterProc) -> None:
    other = Lark(project.config)
    w1, t1 = start_worker(project, concurrency=3)
    w2, t2 = start_worker(other, concurrency=3)
    try:
        await asyncio.sleep(0.2)  # both idle, blocked on their markers
        await project.queue("default").add_bulk(
            [{"name": "Echo", "payload": {"i": i, "sleep": 0.02}} for i in range(60)])
        for i in range(10):
            await project.queue("emails").add("Mail", {"to": f"u{i}"})
            await project.queue("sms").add("Text", {"i": i})

        async def all_done() -> bool:
            c = await project.get_all_counts()
            return (c["default"]["completed"], c["emails"]["completed"],
                    c["sms"]["completed"]) == (60, 10, 10)

        await wait_for(all_done, 20)
        workers = await project.list_workers()
        assert {w.id for w in workers} == {w1.id, w2.id}
    finally:
        await stop_worker(w1, t1)
        await stop_worker(w2, t2)
        await other.close()
    assert w1.stats.done + w2.stats.done == 80
    assert w1.stats.done > 0 and w2.stats.done > 0
    assert w1.stats.failed == w2.stats.failed == 0
    done = await project.queue("default").get_completed()
    assert sorted(j.payload["i"] for j in done) == list(range(60))
    assert all(j.attempts_made == 1 and j.progress == 100 for j in done)
    assert (await project.queue("default").get_job_logs(done[0].id))[0].endswith(
        f"INFO echo {{\"i\": {done[0].payload['i']}, \"sleep\": 0.02}}")
    counts = await project.get_all_counts()
    assert all(c["active"] == c["waiting"] == c["failed"] == 0 for c in counts.values())
    assert assert_keys_in_queue_slots(cluster, QUEUES) > 80


async def test_retry_with_backoff_then_retry_failed(project: Lark, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    q = project.queue("default")
    job = await q.add("Flaky", {"flag": str(flag)})
    worker, task = start_worker(project)
    try:
        async def failed() -> int:
            return (await q.get_job_counts())["failed"]

        await wait_for(failed)
        rec = await q.get_job(job.id)
        assert rec is not None and rec.attempts_made == 2
        assert "flag file missing" in (rec.failed_reason or "")
        flag.write_text("x")
        assert await q.retry_failed() == 1

        async def completed() -> int:
            return (await q.get_job_counts())["completed"]

        await wait_for(completed)
    finally:
        await stop_worker(worker, task)
    rec = await q.get_job(job.id)
    assert rec is not None and rec.state == "completed" and rec.return_value == "ok"
    assert rec.attempts_made == 1
    assert any(line.endswith("INFO retried") for line in await rec.get_logs())


async def test_delayed_job_starts_when_due(project: Lark) -> None:
    q = project.queue("sms")
    worker, task = start_worker(project)
    try:
        await asyncio.sleep(0.2)
        job = await q.add("Text", {}, delay=400)
        assert (await q.get_job_counts())["delayed"] == 1
        assert [j.id for j in await q.get_delayed()] == [job.id]

        async def done() -> Any:
            rec = await q.get_job(job.id)
            return rec if rec is not None and rec.state == "completed" else None

        rec = await wait_for(done, 5)
    finally:
        await stop_worker(worker, task)
    assert rec.processed_on - rec.timestamp >= 350


async def test_promote_remove_clean_pause(project: Lark) -> None:
    q = project.queue("emails")
    a = await q.add("Mail", {"to": "a"}, delay=60_000)
    b = await q.add("Mail", {"to": "b"})
    await q.promote_job(a.id)
    assert [j.id for j in await q.get_waiting()] == [b.id, a.id]
    await q.remove_job(b.id)
    await q.pause()
    assert [j.id for j in await q.get_paused()] == [a.id]
    await q.resume()
    worker, task = start_worker(project)
    try:
        async def done() -> bool:
            return (await q.get_job_counts())["completed"] == 1

        await wait_for(done)
    finally:
        await stop_worker(worker, task)
    assert await q.clean("completed", grace_ms=0) == 1
    assert await q.get_job_counts() == dict.fromkeys(
        ("waiting", "active", "delayed", "completed", "failed", "paused"), 0)


async def test_stalled_job_is_recovered(project: Lark) -> None:
    q = project.queue("default")
    job = await q.add("Echo", {"n": 1})
    # a worker that claims the job and dies: claim it by hand, then expire its lock by hand
    dead = Worker(project, discover(project.config))
    claim = await scripts.run(project.connection.client(), QueueRunner(dead, q)._claim_call(1))
    assert claim[2] == job.id
    client = project.connection.client()
    assert await client.zadd(q.keys.active, {job.id: 0}, xx=True, ch=True) == 1
    assert (await q.get_job_counts())["active"] == 1
    worker, task = start_worker(project, stalled_interval_ms=100)
    try:
        async def done() -> Any:
            rec = await q.get_job(job.id)
            return rec if rec is not None and rec.state == "completed" else None

        rec = await wait_for(done, 5)
    finally:
        await stop_worker(worker, task)
    assert rec.stalled_count == 1 and rec.attempts_made == 1  # a stall uses up no attempt
    events = [e["ev"] for _, e in await q.events()]
    assert "stalled" in events


async def test_blocked_worker_wakes_promptly(project: Lark) -> None:
    """An idle worker blocks on BZPOPMIN on the queue's node; an add wakes it at once."""
    q = project.queue("sms")
    worker, task = start_worker(project)
    try:
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        job = await q.add("Text", {})

        async def done() -> bool:
            rec = await q.get_job(job.id)
            return rec is not None and rec.state == "completed"

        await wait_for(done, 5)
        assert time.monotonic() - t0 < 1.0
    finally:
        await stop_worker(worker, task)


# --------------------------------------------------------------------------- slots, statically


async def test_every_script_call_stays_in_the_queue_slot(
    project: Lark, cluster: RedisClusterProc, calls: list[Call], tmp_path: Path,
) -> None:
    """Exercise every script, then check each call's keys and key prefixes (ARGV) by slot."""
    q = project.queue("default")
    flag = tmp_path / "flag"
    worker, task = start_worker(project, lock_ms=400)
    try:
        await q.add("Echo", {"sleep": 0.5})           # lives past a lock renewal, reports progress
        await q.add("Flaky", {"flag": str(flag)})     # retried with backoff, then failed
        await q.add("Echo", {}, delay=200)            # delayed -> promoted by the claim script
        late = await q.add("Echo", {}, delay=60_000)
        await q.promote_job(late.id)

        async def settled() -> bool:
            c = await q.get_job_counts()
            return c["completed"] == 3 and c["failed"] == 1

        await wait_for(settled, 10)
        await q.pause()
        await q.resume()
        assert await q.retry_failed() == 1
        await wait_for(lambda: _count(q, "failed", 1), 5)
        failed = (await q.get_failed())[0]
        await q.remove_job(failed.id)
        await q.add("Echo", {"sleep": 30})           # still running when the worker stops
        await wait_for(lambda: _count(q, "active", 1), 5)
    finally:
        await stop_worker(worker, task, force=True)  # puts it back: the requeue script
    await q.clean("completed")
    used = {c.script.name for c in calls}
    assert used == set(scripts.load_scripts()), set(scripts.load_scripts()) - used
    for c in calls:
        m = re.match(r"lark:(\{[^}]*\}):", c.keys[0])
        assert m is not None and m.group(1)[1:-1] in QUEUES, (c.script.name, c.keys[0])
        tag = m.group(1)
        for key in c.keys:
            assert key.startswith(f"lark:{tag}:"), (c.script.name, key)
            assert key_slot(key.encode()) == key_slot(tag.encode()), (c.script.name, key)
        for arg in c.args:
            if isinstance(arg, str) and arg.startswith("lark:"):
                assert arg.startswith(f"lark:{tag}:"), (c.script.name, arg)
    assert assert_keys_in_queue_slots(cluster, QUEUES) > 0


async def _count(q: Any, state: str, n: int) -> bool:
    return bool((await q.get_job_counts())[state] == n)


def test_lua_keys_come_from_keys_or_a_prefix_argument() -> None:
    """No script names a key literally: every key is KEYS[i] or ``<prefix ARGV> .. id``."""
    literal_key = re.compile(r"redis\.call\('([A-Z]+)',\s*'([^']*)'")
    for name, s in scripts.load_scripts().items():
        code = re.sub(r"--\[\[.*?\]\]|--[^\n]*", "", s.text, flags=re.S)
        assert literal_key.findall(code) == [], name
        assert "'lark:" not in code and '"lark:' not in code, name
    for queue in QUEUES:
        keys = QueueKeys(queue)
        for prefix in (keys.job(""), keys.logs("")):
            assert key_slot((prefix + "any-id").encode()) == key_slot(f"{{{queue}}}".encode())
