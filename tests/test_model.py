"""Model-based test of the engine: a Hypothesis state machine drives the real Lua scripts
(the way the worker and the Queue API call them, with no worker process, so every step is
deterministic) beside a small in-memory model of the job states, and after every step
checks that the counts, the lists (and their order, where DESIGN defines one) and each
job's record agree with the model.

Operations: add (delay, priority, job id; single and bulk), claim, finish (complete / fail
/ retry later, with keep policies, in batches), stale acknowledgements and lock renewals,
the stalled sweep (a lock forced to expire), requeue at shutdown, retry one / all failed,
remove, promote, due delayed jobs becoming ready, pause, resume and clean.

Every run is deterministic, so Hypothesis can replay and shrink: job ids are given, time
passes only when a rule moves a due time (or a lock deadline) into the past, due times the
engine takes from the Redis clock are read back, and finishes happen in distinct
milliseconds so "newest finished" is a total order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from lark_core import scripts
from lark_core.config import parse_config
from lark_core.errors import JobNotFound, JobNotInState
from lark_core.execution import Claim, Outcome
from lark_core.options import MAX_PRIORITY
from lark_core.project import Lark
from lark_core.queue import Queue
from lark_core.record import STATES, JobRecord
from lark_core.runner import QueueRunner
from lark_core.scripts import Call
from lark_core.worker import Worker

T = TypeVar("T")

LOCK_MS = 600_000  # locks never expire by themselves during an example
LONG_DELAY_MS = 600_000  # due only when promoted, or when a rule moves their due time back
PRIORITIES = [0, 0, 1, 3, MAX_PRIORITY - 1, MAX_PRIORITY]
KEEP_COUNTS = [-1, -1, 0, 1, 2, 3]
KEEP_AGES_MS = [-1, -1, 0, 3_600_000]
# None: a fresh id "j<n>" (ids are given so that every run, and replay, is deterministic);
# "u<k>": reused ids, which dedupe while their record exists
JOB_IDS = [None, None, None, "u0", "u1", "u2"]
STALLED = "<stalled>"
MISSING_ID = "no-such-job"
#: ``LARK_MODEL_EXAMPLES`` runs more examples; the time limit grows with it (about 0.1 s an
#: example on a busy machine, so 1 s each is ample), as the suite's default 120 s would not
EXAMPLES = int(os.environ.get("LARK_MODEL_EXAMPLES", "200"))

# The draw of one finish outcome: ("c"|"f", keep count, keep age ms) or ("r", delay ms)
outcomes = st.one_of(
    st.tuples(st.sampled_from(["c", "f"]), st.sampled_from(KEEP_COUNTS), st.sampled_from(KEEP_AGES_MS)),
    st.tuples(st.just("r"), st.sampled_from([0, 0, LONG_DELAY_MS])),
)
delays = st.sampled_from([0, 0, 0, LONG_DELAY_MS])
picks = st.integers(min_value=0, max_value=1_000)


# --------------------------------------------------------------------------- the model


@dataclass
class MJob:
    id: str
    state: str
    prio: int
    ready: tuple[int, str] = (0, "")  # order within a priority: (ready seq, tie-break id)
    due: int = 0  # delayed until (Redis clock, read back from the record)
    score: int = 0  # its score in the delayed set: ``due``, unless a rule made it due
    finished: tuple[int, str] = (0, "")  # (finish batch number, id): newest is largest
    atm: int = 0
    stc: int = 0
    tok: str | None = None  # the lock token field as the engine keeps it
    reason: str | None = None
    rv: Any = None


@dataclass
class Model:
    jobs: dict[str, MJob] = field(default_factory=dict)
    paused: bool = False
    seq: int = 0
    batch: int = 0

    def in_state(self, state: str) -> list[MJob]:
        return [j for j in self.jobs.values() if j.state == state]

    def make_ready(self, job: MJob, ahead: int = 0) -> None:
        """A job becomes ready: at the back of its priority, or, put back at shutdown,
        ``ahead`` places before its front (score priority * 2^31 - ahead; ties by id)."""
        job.state = "paused" if self.paused else "waiting"
        if ahead:
            job.ready = (-ahead, job.id)
        else:
            self.seq += 1
            job.ready = (self.seq, "")

    def finish(self, job: MJob, state: str) -> None:
        job.state = state
        job.finished = (self.batch, job.id)

    def order(self, state: str) -> list[str]:
        jobs = self.in_state(state)
        if state in ("waiting", "paused"):
            jobs.sort(key=lambda j: (j.prio, j.ready))
        elif state == "delayed":
            jobs.sort(key=lambda j: (j.score, j.id))
        elif state in ("completed", "failed"):
            jobs.sort(key=lambda j: j.finished, reverse=True)
        else:
            jobs.sort(key=lambda j: j.id)
        return [j.id for j in jobs]

    def trim(self, state: str, count: int) -> None:
        """Keep the newest ``count`` finished jobs in ``state``."""
        for job_id in self.order(state)[count:]:
            del self.jobs[job_id]

    def promote_due(self, now: int) -> None:
        for job in sorted(self.in_state("delayed"), key=lambda j: (j.score, j.id)):
            if job.score <= now:
                self.make_ready(job)

    def claim(self, n: int) -> list[str]:
        if self.paused or n <= 0:
            return []
        ids = self.order("waiting")[:n]
        for job_id in ids:
            job = self.jobs[job_id]
            job.state = "active"
            job.atm += 1
        return ids

    def next_due(self) -> int:
        dues = [j.score for j in self.in_state("delayed")]
        return min(dues) if dues else -1


# --------------------------------------------------------------------------- the driver


@dataclass
class FakeWorker:
    """What ``QueueRunner``'s call builders read from a worker."""

    id: str
    lock_ms: int


@dataclass
class Ctx:
    """Shared by every example of one test: one event loop, one connection."""

    loop: asyncio.AbstractEventLoop
    project: Lark
    names: Iterator[int] = field(default_factory=itertools.count)

    def run(self, aw: Awaitable[T]) -> T:
        return self.loop.run_until_complete(aw)


class QueueModel(RuleBasedStateMachine):
    ctx: ClassVar[Ctx | None] = None

    def __init__(self) -> None:
        super().__init__()
        assert self.ctx is not None
        self.c = self.ctx
        name = f"model{next(self.c.names)}"
        self.queue = Queue(name, self.c.project.connection, self.c.project.config)
        self.runner = QueueRunner(cast(Worker, FakeWorker(f"w-{name}", LOCK_MS)), self.queue)
        self.model = Model()
        self.issued: list[Claim] = []  # every claim handed out, current or stale
        self.claims: dict[tuple[str, str], Claim] = {}
        self.last_finish_ms = 0
        self.n = 0

    # -- plumbing -------------------------------------------------------------------

    def run(self, aw: Awaitable[T]) -> T:
        return self.c.run(aw)

    async def _server_ms(self) -> int:
        sec, usec = await self.queue.redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    def before_finish(self) -> None:
        """Wait (bounded) for the Redis clock to pass the last finish: a fresh millisecond."""
        deadline = time.monotonic() + 2.0
        while self.run(self._server_ms()) <= self.last_finish_ms:
            assert time.monotonic() < deadline, "the Redis clock did not advance"
        self.model.batch += 1

    def after_finish(self) -> None:
        self.last_finish_ms = self.run(self._server_ms())

    def script(self, call: Call) -> Any:
        return self.redis(lambda r: scripts.run(r, call))

    def redis(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(client)`` on the loop (the client belongs to the running loop)."""

        async def go() -> T:
            return await fn(self.queue.redis)

        return self.run(go())

    def delay(self, job: MJob) -> None:
        """The job became delayed: read back the due time the engine set."""
        due = self.redis(lambda r: r.hget(self.queue.keys.job(job.id), "due"))
        assert due is not None, f"delayed job {job.id} has no due time"
        job.state = "delayed"
        job.due = job.score = int(due)

    def pick(self, ids: list[str], i: int) -> str:
        return sorted(ids)[i % len(ids)]

    def active_ids(self) -> list[str]:
        return sorted(j.id for j in self.model.in_state("active"))

    def live(self, job_id: str) -> Claim:
        """The claim that holds the lock of an active job."""
        return self.claims[job_id, cast(str, self.model.jobs[job_id].tok)]

    def stale(self) -> list[Claim]:
        return [c for c in self.issued if not self.is_live(c)]

    def is_live(self, claim: Claim) -> bool:
        job = self.model.jobs.get(claim.id)
        return job is not None and job.state == "active" and job.tok == claim.token

    # -- adding -----------------------------------------------------------------------

    def new_id(self, reused: str | None) -> str:
        self.n += 1
        return reused or f"j{self.n:05d}"

    def _model_add(self, job_id: str, prio: int, delay: int, rec: JobRecord) -> None:
        m = self.model
        if job_id in m.jobs:
            existing = m.jobs[job_id]
            assert rec.id == job_id and rec.state == existing.state and rec.priority == existing.prio
            return
        job = MJob(rec.id, "delayed", prio)
        m.jobs[rec.id] = job
        if delay > 0:
            self.delay(job)
        else:
            m.make_ready(job)
        assert rec.state == job.state, f"add() returned state {rec.state}, the job is {job.state}"

    @rule(prio=st.sampled_from(PRIORITIES), delay=delays, job_id=st.sampled_from(JOB_IDS))
    def add(self, prio: int, delay: int, job_id: str | None) -> None:
        job_id = self.new_id(job_id)
        rec = self.run(self.queue.add("Model", {"n": self.n}, priority=prio, delay=delay, job_id=job_id))
        self._model_add(job_id, prio, delay, rec)

    @rule(specs=st.lists(st.tuples(st.sampled_from(PRIORITIES), delays, st.sampled_from(JOB_IDS)),
                         min_size=1, max_size=4))
    def add_bulk(self, specs: list[tuple[int, int, str | None]]) -> None:
        items = []
        job_ids: list[str] = []
        for prio, delay, job_id in specs:
            job_ids.append(self.new_id(job_id))
            items.append({"name": "Model", "payload": {"n": self.n},
                          "opts": {"priority": prio, "delay": delay, "job_id": job_ids[-1]}})
        recs = self.run(self.queue.add_bulk(items))
        assert len(recs) == len(specs)
        for (prio, delay, _j), job_id, rec in zip(specs, job_ids, recs, strict=True):
            self._model_add(job_id, prio, delay, rec)

    # -- the worker side ----------------------------------------------------------------

    def _claim(self, n: int) -> list[Claim]:
        reply = self.script(self.runner._claim_call(n))
        now = int(reply[1])
        self.model.promote_due(now)
        expected = self.model.claim(n)
        claims = Claim.parse(self.queue.name, reply)
        assert [c.id for c in claims] == expected, "claim order differs from the model"
        assert int(reply[0]) == self.model.next_due()
        for c in claims:
            job = self.model.jobs[c.id]
            assert c.attempt == job.atm and c.stalled_count == job.stc and c.priority == job.prio
            job.tok = c.token
            self.issued.append(c)
            self.claims[c.id, c.token] = c
        return claims

    @rule(n=st.integers(min_value=1, max_value=4))
    def claim(self, n: int) -> None:
        self._claim(n)

    @precondition(lambda self: bool(self.model.in_state("delayed")))
    @rule(mask=st.integers(min_value=1, max_value=15))
    def make_due(self, mask: int) -> None:
        """Time passes for some delayed jobs: their due time moves into the past."""
        ids = sorted(j.id for j in self.model.in_state("delayed"))[:4]
        for b, job_id in enumerate(ids):
            if mask >> b & 1:
                score = 4 - b  # due in the reverse of id order
                self.redis(lambda r, j=job_id, sc=score: r.zadd(self.queue.keys.delayed, {j: sc}, xx=True))
                self.model.jobs[job_id].score = score

    @rule()
    def promote_due(self) -> None:
        """The claim script wanting no job only promotes the due delayed jobs."""
        self._claim(0)

    @precondition(lambda self: bool(self.model.in_state("active")))
    @rule(chosen=st.lists(st.tuples(picks, outcomes), min_size=1, max_size=3))
    def finish(self, chosen: list[tuple[int, tuple[Any, ...]]]) -> None:
        """One batch of acknowledgements, as the runner sends them."""
        m = self.model
        acks: list[tuple[Claim, Outcome]] = []
        for i, drawn in chosen:
            claim = self.live(self.pick(self.active_ids(), i))
            if any(c.id == claim.id for c, _o in acks):
                continue
            if drawn[0] == "r":
                outcome = Outcome("r", f"retry {claim.id}", "trace", drawn[1], (-1, -1), 3)
            elif drawn[0] == "c":
                outcome = Outcome("c", json.dumps({"job": claim.id}), "", 0, drawn[1:], 3)
            else:
                outcome = Outcome("f", f"failed {claim.id}", "trace", 0, drawn[1:], 3)
            acks.append((claim, outcome))
        self.before_finish()
        lost = self.script(self.runner._finish_call([o.args(c) for c, o in acks]))
        self.after_finish()
        assert lost == []
        trims: set[tuple[str, int]] = set()
        for claim, outcome in acks:
            job = m.jobs[claim.id]
            job.tok = f"d:{claim.token}"  # an applied ack marks its token done
            count, age = outcome.keep
            if outcome.code == "r":
                job.reason = outcome.value
                if outcome.delay_ms > 0:
                    self.delay(job)
                else:
                    m.make_ready(job)
                continue
            state = "completed" if outcome.code == "c" else "failed"
            if count == 0 or age == 0:
                del m.jobs[claim.id]
                continue
            m.finish(job, state)
            if outcome.code == "c":
                job.rv = json.loads(outcome.value)
            else:
                job.reason = outcome.value
            if count > 0:
                trims.add((state, count))
        for state, count in trims:
            m.trim(state, count)

    @precondition(lambda self: bool(self.stale()))
    @rule(i=picks, code=st.sampled_from(["c", "f", "r"]))
    def stale_ack(self, i: int, code: str) -> None:
        """An acknowledgement from a claim that no longer holds the lock (or a replay)."""
        stale = self.stale()
        claim = stale[i % len(stale)]
        job = self.model.jobs.get(claim.id)
        # a replay of an applied ack, or an ack for a job gone (or retried) since, is a
        # silent no-op; one for a job another claim (or a recovery) took over is "lost"
        fenced = job is not None and job.tok is not None and job.tok not in (claim.token,
                                                                             f"d:{claim.token}")
        lost = self.script(self.runner._finish_call([Outcome(code, "null").args(claim)]))
        assert lost == ([claim.id] if fenced else []), (claim, job)

    @precondition(lambda self: bool(self.issued))
    @rule(i=picks, with_stale=st.booleans())
    def extend_locks(self, i: int, with_stale: bool) -> None:
        """The worker renews its locks; a claim that lost its lock hears so."""
        held = [self.live(j.id) for j in self.model.in_state("active")]
        stale = self.stale()
        if with_stale and stale:
            held.append(stale[i % len(stale)])
        self.runner.active = {c.id: Claim(**{**vars(c), "lost": False}) for c in held}
        self.run(self.runner.extend_locks())
        lost = sorted(c.id for c in self.runner.active.values() if c.lost)
        self.runner.active = {}
        assert lost == sorted(c.id for c in held if not self.is_live(c))

    @precondition(lambda self: bool(self.model.in_state("active")))
    @rule(mask=st.integers(min_value=1, max_value=15), max_stalls=st.sampled_from([0, 1, 2]))
    def stall(self, mask: int, max_stalls: int) -> None:
        """Locks of some active jobs expire (their worker froze); one sweep runs."""
        ids = [job_id for b, job_id in enumerate(self.active_ids()[:4]) if mask >> b & 1]
        if not ids:
            return
        for job_id in ids:
            self.redis(lambda r, j=job_id: r.zadd(self.queue.keys.active, {j: 1}, xx=True))
        self.before_finish()
        recovered, failed = self.run(self.runner.sweep_stalled(max_stalls, 0))
        self.after_finish()
        exp_recovered, exp_failed = [], []
        for job_id in sorted(ids):  # all scored 1: Redis orders them by id
            job = self.model.jobs[job_id]
            job.stc += 1
            job.tok = ""
            if job.stc > max_stalls:
                self.model.finish(job, "failed")
                job.reason = STALLED
                exp_failed.append(job_id)
            else:
                job.atm = max(job.atm - 1, 0)  # a stall does not use up an attempt
                self.model.make_ready(job)
                exp_recovered.append(job_id)
        assert (recovered, failed) == (exp_recovered, exp_failed)

    @precondition(lambda self: bool(self.model.in_state("active")))
    @rule(mask=st.integers(min_value=1, max_value=15), with_stale=st.booleans(), i=picks)
    def requeue(self, mask: int, with_stale: bool, i: int) -> None:
        """Shutdown past its grace: in-flight jobs go back to the front, the try uncounted."""
        claims = [self.live(job_id) for b, job_id in enumerate(self.active_ids()[:4]) if mask >> b & 1]
        stale = self.stale()
        if with_stale and stale and all(c.id != stale[i % len(stale)].id for c in claims):
            claims.append(stale[i % len(stale)])
        live = [(k, c) for k, c in enumerate(claims) if self.is_live(c)]
        assert self.run(self.runner.requeue(claims)) == len(live)
        for k, claim in live:
            job = self.model.jobs[claim.id]
            job.atm -= 1
            job.tok = ""
            self.model.make_ready(job, ahead=len(claims) - k)  # they keep the order given

    # -- the Queue API ---------------------------------------------------------------------

    def _target(self, i: int, missing: bool) -> str:
        ids = list(self.model.jobs)
        return MISSING_ID if missing or not ids else self.pick(ids, i)

    @rule(i=picks, missing=st.booleans())
    def retry_job(self, i: int, missing: bool) -> None:
        job_id = self._target(i, missing)
        job = self.model.jobs.get(job_id)
        if job is None:
            with pytest.raises(JobNotFound):
                self.run(self.queue.retry_job(job_id))
            return
        if job.state not in ("failed", "completed"):
            with pytest.raises(JobNotInState):
                self.run(self.queue.retry_job(job_id))
            return
        self.run(self.queue.retry_job(job_id))
        self._reset(job)

    def _reset(self, job: MJob) -> None:
        job.atm = job.stc = 0
        job.reason = job.rv = job.tok = None
        self.model.make_ready(job)

    @rule()
    def retry_failed(self) -> None:
        oldest_first = list(reversed(self.model.order("failed")))
        assert self.run(self.queue.retry_failed()) == len(oldest_first)
        for job_id in oldest_first:
            self._reset(self.model.jobs[job_id])

    @rule(i=picks, missing=st.booleans())
    def remove_job(self, i: int, missing: bool) -> None:
        job_id = self._target(i, missing)
        job = self.model.jobs.get(job_id)
        if job is None:
            with pytest.raises(JobNotFound):
                self.run(self.queue.remove_job(job_id))
        elif job.state == "active":
            with pytest.raises(JobNotInState):
                self.run(self.queue.remove_job(job_id))
        else:
            self.run(self.queue.remove_job(job_id))
            del self.model.jobs[job_id]

    @rule(i=picks, missing=st.booleans())
    def promote_job(self, i: int, missing: bool) -> None:
        delayed = sorted(j.id for j in self.model.in_state("delayed"))
        job_id = self.pick(delayed, i) if delayed and not missing else self._target(i, missing)
        job = self.model.jobs.get(job_id)
        if job is None:
            with pytest.raises(JobNotFound):
                self.run(self.queue.promote_job(job_id))
        elif job.state != "delayed":
            with pytest.raises(JobNotInState):
                self.run(self.queue.promote_job(job_id))
        else:
            self.run(self.queue.promote_job(job_id))
            self.model.make_ready(job)

    @rule()
    def pause(self) -> None:
        self.run(self.queue.pause())
        self.model.paused = True
        for job in self.model.in_state("waiting"):
            job.state = "paused"

    @rule()
    def resume(self) -> None:
        self.run(self.queue.resume())
        self.model.paused = False
        for job in self.model.in_state("paused"):
            job.state = "waiting"

    @rule(state=st.sampled_from(["completed", "failed"]), grace_ms=st.sampled_from([0, 3_600_000]))
    def clean(self, state: str, grace_ms: int) -> None:
        removed = self.run(self.queue.clean(state, grace_ms))
        expected = self.model.order(state) if grace_ms == 0 else []
        assert removed == len(expected)
        for job_id in expected:
            del self.model.jobs[job_id]

    # -- what must hold after every step ---------------------------------------------------

    @invariant()
    def agrees_with_model(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        m = self.model
        q = self.queue
        counts = await q.get_job_counts()
        assert counts == {s: len(m.in_state(s)) for s in STATES}, (counts, m)
        assert await q.is_paused() == m.paused
        for state in STATES:
            records = await q.get_jobs(state)
            ids = [r.id for r in records]
            if state == "active":
                ids.sort()
            assert ids == m.order(state), (
                f"{state}: engine {ids} != model {m.order(state)}; scores "
                f"{await q.redis.zrange(q.keys.state_key(state), 0, -1, withscores=True)}; "
                f"model {[(j.id, j.prio, j.ready, j.score) for j in m.in_state(state)]}")
            for rec in records:
                self._check_record(rec, m.jobs[rec.id])
        keys = [k async for k in q.redis.scan_iter(match=q.keys.job("*"), count=1000)]
        assert sorted(k[len(q._job_prefix):] for k in keys) == sorted(m.jobs), "job records in no state"

    def _check_record(self, rec: JobRecord, job: MJob) -> None:
        assert rec.state == job.state
        assert rec.priority == job.prio
        assert rec.attempts_made == job.atm, (rec.id, rec.attempts_made, job.atm)
        assert rec.stalled_count == job.stc
        if job.reason == STALLED:
            assert rec.failed_reason is not None and "stalled" in rec.failed_reason
        else:
            assert rec.failed_reason == job.reason
        if job.state == "completed":
            assert rec.return_value == job.rv
        if job.state == "delayed":
            assert rec.delay_until == job.due


@pytest.mark.timeout(max(120, EXAMPLES))
def test_engine_agrees_with_model(redis_url: str) -> None:
    loop = asyncio.new_event_loop()
    config = parse_config({"jobs": {"queues": ["model"]}, "redis": {"url": redis_url}}, None,
                          source="test_model")
    project = Lark(config)
    QueueModel.ctx = Ctx(loop, project)
    try:
        run_state_machine_as_test(QueueModel, settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=40, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    finally:
        QueueModel.ctx = None
        loop.run_until_complete(project.close())
        loop.close()
