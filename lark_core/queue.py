"""``Queue``: the producer and inspection API of one queue (async; mirrors the seed)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lark_core import scripts
from lark_core.adding import AddBatch
from lark_core.connection import Connection, translate_errors
from lark_core.errors import JobNotFound, JobNotInState, LarkError
from lark_core.keys import QueueKeys
from lark_core.record import STATES, JobRecord, JobState
from lark_core.scripts import Call, ScriptCode
from lark_core.serialization import loads_own
from lark_core.settings import Config

_NEWEST_FIRST = {JobState.COMPLETED.value, JobState.FAILED.value}


def log_line(level: str, message: str, at: float | None = None) -> str:
    """``"<ISO time> <LEVEL> <message>"``, the stored form of a job log line."""
    stamp = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    return f"{stamp.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} {level.upper()} {message}"


class Queue:
    """One configured queue. Methods are coroutines; clients are per event loop."""

    def __init__(self, name: str, connection: Connection, config: Config) -> None:
        self.name = name
        self.connection = connection
        self.config = config
        self.keys = QueueKeys(name)
        self._job_prefix = self.keys.job("")
        self._logs_prefix = self.keys.logs("")

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"

    @property
    def redis(self) -> Any:
        return self.connection.client()

    # -- adding ---------------------------------------------------------------

    def _batch(self, jobs: Iterable[tuple[Any, Any, Mapping[str, Any] | None]]) -> AddBatch:
        """Validate and encode every job (raising before anything is sent), then choose ids."""
        batch = AddBatch(self.config.jobs.max_payload_bytes)
        for name, payload, opts in jobs:
            batch.add(name, payload, opts)
        batch.seal()
        return batch

    def _add_calls(self, batch: AddBatch) -> list[Call]:
        k = self.keys
        keys = [k.wait, k.paused, k.delayed, k.meta, k.marker, k.events]
        add = scripts.script("add")
        return [Call(add, keys, args) for args in batch.calls_args(self._job_prefix)]

    def _added_records(self, batch: AddBatch, flags: Sequence[int]) -> list[JobRecord | None]:
        """Records of the jobs just added (built here, not read back); None where the id existed."""
        now = int(time.time() * 1000)
        default_attempts = self.config.jobs.options.attempts
        out: list[JobRecord | None] = []
        for job_id, data, profile, flag in zip(batch.ids, batch.data, batch.profiles, flags, strict=True):
            if not flag:
                out.append(None)
                continue
            state = (JobState.PAUSED if flag == 2 else JobState.DELAYED if profile.delay_ms
                     else JobState.WAITING)
            out.append(JobRecord(
                id=job_id, name=profile.name, queue=self.name, payload=loads_own(data),
                state=state.value, priority=profile.priority,
                max_attempts=profile.stored.get("attempts", default_attempts),
                timestamp=now, options=profile.options(), _queue=self,
                delay_until=now + profile.delay_ms if state is JobState.DELAYED else None,
            ))
        return out

    @translate_errors
    async def add(self, name: str, payload: Any = None, **opts: Any) -> JobRecord:
        """Enqueue one job; an existing ``job_id`` returns that job and enqueues nothing."""
        return (await self._add(self._batch([(name, payload, opts)])))[0]

    def add_sync(self, name: str, payload: Any = None, **opts: Any) -> JobRecord:
        """``add`` for sync code (no event loop needed)."""
        batch = self._batch([(name, payload, opts)])
        (call,) = self._add_calls(batch)
        client = self.connection.sync_client()
        try:
            flags = scripts.run_sync(client, call)
        except Exception as exc:
            if isinstance(exc, LarkError):
                raise
            from lark_core.connection import REDIS_DOWN_ERRORS, is_acl_refusal

            if isinstance(exc, REDIS_DOWN_ERRORS):
                raise self.connection.unavailable(exc) from None
            if is_acl_refusal(exc):
                raise self.connection.permission_denied("add jobs", exc) from None
            raise
        (rec,) = self._added_records(batch, flags)
        if rec is None:
            raw: dict[str, str] = client.hgetall(self.keys.job(batch.ids[0]))  # type: ignore[assignment]
            if raw:
                return JobRecord.from_hash(batch.ids[0], self, self.name, raw,
                                           self.config.jobs.options.attempts)
            (rec,) = self._added_records(batch, [1])
        assert rec is not None
        return rec

    @translate_errors
    async def add_bulk(self, jobs: Iterable[Mapping[str, Any]]) -> list[JobRecord]:
        """Enqueue many jobs in one round trip: ``[{"name", "payload", "opts"}, ...]``.

        Every item is checked first: a bad one raises and nothing is enqueued. The jobs go
        in calls of up to ``adding.CHUNK`` jobs (one pipeline), each call atomic.
        """
        batch = self._batch(_bulk_items(jobs))
        if not len(batch):
            return []
        return await self._add(batch)

    async def _add(self, batch: AddBatch) -> list[JobRecord]:
        calls = self._add_calls(batch)
        if len(calls) == 1:
            flags = await scripts.run(self.redis, calls[0])
        else:
            flags = []
            for reply in await scripts.run_many(self.redis, calls):
                if isinstance(reply, BaseException):
                    raise reply
                flags.extend(reply)
        records = self._added_records(batch, flags)
        existing = [i for i, rec in enumerate(records) if rec is None]
        if existing:  # ids that were there already: their stored records (one pipeline)
            found = {r.id: r for r in await self._records([batch.ids[i] for i in existing])}
            fallback = self._added_records(batch, [1] * len(batch))
            for i in existing:
                records[i] = found.get(batch.ids[i]) or fallback[i]
        return records  # type: ignore[return-value]

    # -- reading --------------------------------------------------------------

    @translate_errors
    async def get_job_counts(self) -> dict[str, int]:
        """Exact counts per state, O(1) each, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        self.queue_counts_into(pipe)
        return self.counts_from(await pipe.execute())[0]

    def queue_counts_into(self, pipe: Any) -> None:
        """Add this queue's count commands to a pipeline (7 replies; see ``counts_from``)."""
        for state in STATES:
            pipe.zcard(self.keys.state_key(state))
        pipe.hget(self.keys.meta, "paused")

    @staticmethod
    def counts_from(replies: Sequence[Any]) -> tuple[dict[str, int], bool]:
        counts = {state: int(replies[i]) for i, state in enumerate(STATES)}
        return counts, replies[len(STATES)] == "1"

    @translate_errors
    async def is_paused(self) -> bool:
        return await self.redis.hget(self.keys.meta, "paused") == "1"

    @translate_errors
    async def get_jobs(self, state: str, start: int = 0, end: int = -1) -> list[JobRecord]:
        """Jobs in ``state`` (``end`` inclusive). Finished: newest first; ready: run order."""
        if state not in STATES:
            raise ValueError(f"state: expected one of {', '.join(STATES)}, got {state!r}")
        key = self.keys.state_key(state)
        if state in _NEWEST_FIRST:
            ids = await self.redis.zrevrange(key, start, end)
        else:
            ids = await self.redis.zrange(key, start, end)
        return await self._records(ids)

    async def get_waiting(self, start: int = 0, end: int = -1) -> list[JobRecord]:
        return await self.get_jobs("waiting", start, end)

    async def get_active(self, start: int = 0, end: int = -1) -> list[JobRecord]:
        return await self.get_jobs("active", start, end)

    async def get_delayed(self, start: int = 0, end: int = -1) -> list[JobRecord]:
        return await self.get_jobs("delayed", start, end)

    async def get_completed(self, start: int = 0, end: int = -1) -> list[JobRecord]:
        return await self.get_jobs("completed", start, end)

    async def get_failed(self, start: int = 0, end: int = -1) -> list[JobRecord]:
        return await self.get_jobs("failed", start, end)

    async def get_paused(self, start: int = 0, end: int = -1) -> list[JobRecord]:
        return await self.get_jobs("paused", start, end)

    async def _records(self, ids: Sequence[str]) -> list[JobRecord]:
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.keys.job(job_id))
        raws = await pipe.execute()
        attempts = self.config.jobs.options.attempts
        return [JobRecord.from_hash(i, self, self.name, raw, attempts)
                for i, raw in zip(ids, raws, strict=True) if raw]

    @translate_errors
    async def get_job(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.hgetall(self.keys.job(job_id))
        if not raw:
            return None
        return JobRecord.from_hash(job_id, self, self.name, raw, self.config.jobs.options.attempts)

    @translate_errors
    async def get_job_logs(self, job_id: str, start: int = 0, end: int = -1) -> list[str]:
        return list(await self.redis.lrange(self.keys.logs(job_id), start, end))

    # -- acting on jobs -------------------------------------------------------

    def _raise_code(self, code: int, job_id: str, wanted: str) -> None:
        if code == ScriptCode.NO_SUCH_JOB:
            raise JobNotFound(f"no job {job_id!r} in queue {self.name!r}")
        if code == ScriptCode.WRONG_STATE:
            raise JobNotInState(f"job {job_id!r} in queue {self.name!r} is not {wanted}")

    def _retry_call(self, mode: str, arg: Any, from_state: str = "failed") -> Call:
        k = self.keys
        return Call(scripts.script("retry"),
                    [k.state_key(from_state), k.wait, k.paused, k.meta, k.events, k.marker,
                     k.completed, k.failed],
                    [self._job_prefix, self._logs_prefix, log_line("info", "retried"), mode, arg])

    @translate_errors
    async def retry_job(self, job_id: str) -> None:
        """Failed or completed -> back of waiting (or paused), attempts reset."""
        code = await scripts.run(self.redis, self._retry_call("one", job_id))
        self._raise_code(code, job_id, "failed or completed")

    @translate_errors
    async def retry_failed(self, batch: int = 1000) -> int:
        """Retry every failed job; returns how many."""
        total = 0
        while n := await scripts.run(self.redis, self._retry_call("all", batch)):
            total += n
        return total

    @translate_errors
    async def remove_job(self, job_id: str) -> None:
        k = self.keys
        code = await scripts.run(self.redis, Call(
            scripts.script("remove"),
            [k.wait, k.paused, k.delayed, k.completed, k.failed, k.active, k.events,
             k.job(job_id), k.logs(job_id)], [job_id]))
        if code == ScriptCode.WRONG_STATE:
            raise JobNotInState(f"job {job_id!r} is active; it can be removed once it finishes")
        self._raise_code(code, job_id, "removable")

    @translate_errors
    async def promote_job(self, job_id: str) -> None:
        k = self.keys
        code = await scripts.run(self.redis, Call(
            scripts.script("promote"),
            [k.delayed, k.wait, k.paused, k.meta, k.events, k.marker, k.job(job_id)], [job_id]))
        self._raise_code(code, job_id, "delayed")

    # -- the queue as a whole -------------------------------------------------

    async def _pause(self, flag: str) -> int:
        k = self.keys
        return int(await scripts.run(self.redis, Call(
            scripts.script("pause"), [k.wait, k.paused, k.meta, k.events, k.marker],
            [self._job_prefix, flag])))

    @translate_errors
    async def pause(self) -> None:
        """Pause for every worker: no new claims; active jobs finish."""
        await self._pause("1")

    @translate_errors
    async def resume(self) -> None:
        await self._pause("0")

    @translate_errors
    async def clean(self, state: str, grace_ms: int = 0, batch: int = 1000) -> int:
        """Remove completed or failed jobs finished more than ``grace_ms`` ago."""
        if state not in (JobState.COMPLETED.value, JobState.FAILED.value):
            raise ValueError(f"clean: state must be 'completed' or 'failed', got {state!r}")
        if grace_ms < 0:
            raise ValueError(f"clean: grace must be >= 0, got {grace_ms}")
        call = Call(scripts.script("clean"), [self.keys.state_key(state), self.keys.events],
                    [self._job_prefix, self._logs_prefix, grace_ms, batch])
        total = 0
        while n := await scripts.run(self.redis, call):
            total += n
        return total

    # -- observability --------------------------------------------------------

    def metric_fields(self, minutes: int, now_ms: int | None = None) -> list[int]:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        last = now // 60000 * 60000
        return [last - 60000 * i for i in range(minutes - 1, -1, -1)]

    def metrics_into(self, pipe: Any, minutes: list[int]) -> None:
        fields = [f"c:{m}" for m in minutes] + [f"f:{m}" for m in minutes]
        pipe.hmget(self.keys.metrics, fields)

    @staticmethod
    def metrics_from(minutes: list[int], reply: Sequence[Any]) -> list[dict[str, int]]:
        n = len(minutes)
        return [{"minute": m, "completed": int(reply[i] or 0), "failed": int(reply[n + i] or 0)}
                for i, m in enumerate(minutes)]

    @translate_errors
    async def get_metrics(self, minutes: int = 60) -> list[dict[str, int]]:
        """Per-minute completed/failed counts, oldest first, ending with the current minute."""
        fields = self.metric_fields(minutes)
        pipe = self.redis.pipeline(transaction=False)
        self.metrics_into(pipe, fields)
        return self.metrics_from(fields, (await pipe.execute())[0])

    @translate_errors
    async def prune_metrics(self, keep_minutes: int = 24 * 60) -> int:
        """Drop per-minute counts older than ``keep_minutes``."""
        cutoff = int(time.time() * 1000) - keep_minutes * 60000
        old = [f for f in await self.redis.hkeys(self.keys.metrics)
               if f[2:].isdigit() and int(f[2:]) < cutoff]
        if old:
            await self.redis.hdel(self.keys.metrics, *old)
        return len(old)

    @translate_errors
    async def events(self, since: str = "0-0", count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """Job events after stream id ``since`` (exclusive), oldest first."""
        entries = await self.redis.xrange(self.keys.events, f"({since}" if since != "-" else "-",
                                          "+", count=count)
        return [(eid, dict(fields)) for eid, fields in entries]

    async def close(self) -> None:
        await self.connection.aclose()


def _bulk_items(jobs: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Any, Any, Mapping[str, Any] | None]]:
    for i, spec in enumerate(jobs):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"add_bulk item {i}: expected a dict with 'name', got {spec!r}")
        yield spec["name"], spec.get("payload"), spec.get("opts")
