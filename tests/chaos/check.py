"""The chaos run's verdict: read the queue's Redis and the execution records, explain
every execution beyond the first, and print the figures.

A job passes when it was acknowledged by Redis at add time and, at the end:
- its record exists, is ``completed``, and its id is in the completed zset and in no
  other state's zset (and nothing unknown is in any zset);
- ``get_job_counts()`` equals the zset sizes and the tally of the records' states;
- its completion was recorded once (per-minute metrics sum to the completed count,
  no id twice in the ``completed`` events);
- its return value was written by the execution whose claim is in force (a worker
  that lost its lock never overwrote it);
- every execution but the accepted one is either planned (a first run told to fail or
  to outlive its timeout) or explained by a fault that hit that execution's worker (or
  all of them) while it ran: SIGKILL, SIGSTOP past the lock, SIGTERM, its connections
  killed, or a restart of Redis.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from lark_core.keys import QueueKeys
from lark_core.record import STATES

#: faults that hit one worker process (``Fault.pid``) or, with pid None, all of them
WORKER_FAULTS = ("kill", "term", "freeze", "conn")
REDIS_FAULTS = ("redis_restart", "redis_crash")
CHUNK = 2000


@dataclass
class Fault:
    """One fault as it happened: ``[t0, t1]`` in epoch ms; pid None = every worker."""

    kind: str
    t0: int
    t1: int
    pid: int | None = None
    note: str = ""


@dataclass
class Execution:
    pid: int
    tok: str
    attempt: int
    start: int
    plan: str
    end_kind: str | None = None  # e | f | c | None (never returned: its process died)
    end: int | None = None


@dataclass
class Report:
    seed: int
    duration_s: float
    settings: dict[str, Any]
    jobs: int = 0
    jobs_by_queue: dict[str, int] = field(default_factory=dict)
    add_retries: int = 0
    add_unacknowledged: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    faults_skipped: dict[str, int] = field(default_factory=dict)
    #: planned kinds that never happened (every attempt skipped): the run did not test them
    kinds_not_injected: list[str] = field(default_factory=list)
    fault_errors: list[str] = field(default_factory=list)
    executions: int = 0
    worker_processes: int = 0
    jobs_run_more_than_once: int = 0
    reruns_planned: int = 0
    reruns_explained: dict[str, int] = field(default_factory=dict)
    reruns_unexplained: int = 0
    final_counts: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    not_completed: dict[str, int] = field(default_factory=dict)
    stuck_active: int = 0
    state_mismatches: int = 0
    count_mismatches: list[str] = field(default_factory=list)
    unknown_jobs: int = 0
    completions_recorded: int = 0
    double_completions: int = 0
    stale_overwrites: int = 0
    #: runs on a worker frozen past its lock that returned a result after waking; none of
    #: these results may be the one the record holds
    frozen_results_refused: int = 0
    stale_acks_rejected: int = 0
    tokens_run_twice: int = 0
    worker_exits: dict[str, int] = field(default_factory=dict)
    worker_problems: list[str] = field(default_factory=list)
    settled_s: float | None = None
    elapsed_s: float = 0.0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.jobs > 0 and self.lost == 0 and not self.not_completed and self.stuck_active == 0
                and self.state_mismatches == 0 and not self.count_mismatches and self.unknown_jobs == 0
                and self.double_completions == 0 and self.stale_overwrites == 0
                and self.reruns_unexplained == 0 and self.tokens_run_twice == 0
                and self.add_unacknowledged == 0 and not self.worker_problems
                and not self.kinds_not_injected
                and self.completions_recorded == self.jobs)

    def example(self, text: str) -> None:
        if len(self.examples) < 25:
            self.examples.append(text)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def text(self) -> str:
        s = self.settings
        by_q = ", ".join(f"{q} {n}" for q, n in sorted(self.jobs_by_queue.items()))
        faults = ", ".join(f"{k} {n}" for k, n in sorted(self.faults.items())) or "none"
        skipped = ", ".join(f"{k} {n}" for k, n in sorted(self.faults_skipped.items()))
        explained = ", ".join(f"{k} {n}" for k, n in sorted(self.reruns_explained.items())) or "none"
        counts = ", ".join(f"{k} {v}" for k, v in self.final_counts.items())
        exits = ", ".join(f"{k} {v}" for k, v in sorted(self.worker_exits.items())) or "none"
        lines = [
            f"Lark chaos run: seed {self.seed}, {self.duration_s:g} s of faults, {s['workers']} workers "
            f"x concurrency {s['concurrency']}, lock {s['lock_ms']} ms, sweep {s['stalled_interval_ms']} ms, "
            f"max_stalls {s['max_stalls']}, Redis appendfsync always; worker = {s['worker_cmd']}",
            f"jobs acknowledged by Redis : {self.jobs} ({by_q}); add calls retried {self.add_retries}, "
            f"never acknowledged {self.add_unacknowledged}",
            f"faults                     : {faults}" + (f" (skipped: {skipped})" if skipped else "")
            + (f"; NEVER INJECTED: {', '.join(self.kinds_not_injected)}" if self.kinds_not_injected else ""),
            f"executions                 : {self.executions} in {self.worker_processes} worker processes; "
            f"jobs run more than once {self.jobs_run_more_than_once}",
            f"  re-runs planned          : {self.reruns_planned} (first run told to fail or time out)",
            f"  re-runs explained        : {explained}",
            f"  re-runs unexplained      : {self.reruns_unexplained}",
            f"final counts               : {counts}",
            f"jobs lost                  : {self.lost}",
            f"jobs not completed         : {sum(self.not_completed.values())} {self.not_completed or ''}",
            f"stuck active               : {self.stuck_active}",
            f"state/list mismatches      : {self.state_mismatches}; unknown ids {self.unknown_jobs}; "
            f"counts == lists: {'yes' if not self.count_mismatches else self.count_mismatches}",
            f"completions recorded       : {self.completions_recorded} for {self.jobs} jobs; "
            f"double completions {self.double_completions}",
            f"stale overwrites           : {self.stale_overwrites} (acks refused by the lock fence: "
            f"{self.stale_acks_rejected}); claims run twice {self.tokens_run_twice}",
            f"frozen workers woken       : {self.frozen_results_refused} results returned after the "
            f"lock was lost, {self.frozen_results_refused} discarded (none in a record)",
            f"worker exits               : {exits}",
        ]
        if self.fault_errors:
            lines.append(f"fault errors               : {self.fault_errors[:5]}")
        if self.worker_problems:
            lines.append(f"worker problems            : {self.worker_problems[:5]}")
        if self.settled_s is not None:
            lines.append(f"settled                    : {self.settled_s:.1f} s after the last fault; "
                         f"run took {self.elapsed_s:.0f} s")
        for e in self.examples:
            lines.append(f"  ! {e}")
        lines.append(f"RESULT: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def parse_executions(lines: Sequence[str]) -> list[Execution]:
    """Pair the ``s`` and end records of one job's executions by their lock token."""
    runs: list[Execution] = []
    open_by_tok: dict[str, Execution] = {}
    for line in lines:
        parts = line.split("|")
        kind, pid, tok, attempt, ms = parts[0], int(parts[1]), parts[2], int(parts[3]), int(parts[4])
        if kind == "s":
            ex = Execution(pid, tok, attempt, ms, parts[5] if len(parts) > 5 else "ok")
            runs.append(ex)
            open_by_tok[f"{pid}|{tok}"] = ex
        else:
            ex_open = open_by_tok.pop(f"{pid}|{tok}", None)
            if ex_open is not None:
                ex_open.end_kind, ex_open.end = kind, ms
    return runs


def explain(ex: Execution, faults: Iterable[Fault], slack_ms: int) -> str | None:
    """The kind of the fault that explains why ``ex`` was not the accepted run, if any."""
    lo = ex.start - slack_ms
    hi = math.inf if ex.end is None else ex.end + slack_ms
    best: str | None = None
    for f in faults:
        if f.t0 > hi or f.t1 < lo:
            continue
        if f.kind in WORKER_FAULTS and f.pid == ex.pid:
            return f.kind
        if (f.kind in WORKER_FAULTS and f.pid is None) or f.kind in REDIS_FAULTS:
            best = best or (f.kind if f.kind in REDIS_FAULTS else f"{f.kind}_all")
    return best


class Checker:
    """Reads both Redis servers after the run (workers stopped) and fills the report."""

    def __init__(self, queue_redis: redis.Redis, record_redis: redis.Redis, queues: Sequence[str],
                 expected: dict[str, str], faults: list[Fault], slack_ms: int, report: Report) -> None:
        # decode_responses clients: replies are str (the stubs' unions say otherwise)
        self.r: Any = queue_redis
        self.rec: Any = record_redis
        self.queues = list(queues)
        self.expected = expected  # job id -> queue, for every add Redis acknowledged
        self.faults = sorted(faults, key=lambda f: f.t0)
        self.slack_ms = slack_ms
        self.report = report

    def run(self, api_counts: dict[str, dict[str, int]]) -> Report:
        rep = self.report
        members = self._members(api_counts)
        hashes = self._hashes()
        self._states(members, hashes)
        self._completions(hashes)
        self._executions(hashes)
        return rep

    # -- states and counts ---------------------------------------------------------

    def _members(self, api_counts: dict[str, dict[str, int]]) -> dict[str, list[tuple[str, str]]]:
        """id -> [(queue, state)] over every state zset of every queue; counts checked."""
        rep = self.report
        where: dict[str, list[tuple[str, str]]] = defaultdict(list)
        totals: Counter[str] = Counter()
        for q in self.queues:
            k = QueueKeys(q)
            for state in STATES:
                ids = self.r.zrange(k.state_key(state), 0, -1)
                totals[state] += len(ids)
                for job_id in ids:
                    where[job_id].append((q, state))
                api = api_counts.get(q, {}).get(state)
                if api != len(ids):
                    rep.count_mismatches.append(f"{q}.{state}: get_job_counts {api} != list {len(ids)}")
        rep.final_counts = {s: totals[s] for s in STATES}
        rep.stuck_active = totals["active"]
        return where

    def _hashes(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        ids = list(self.expected)
        for i in range(0, len(ids), CHUNK):
            pipe = self.r.pipeline(transaction=False)
            for job_id in ids[i:i + CHUNK]:
                pipe.hmget(QueueKeys(self.expected[job_id]).job(job_id), "state", "tok", "rv")
            for job_id, (state, tok, rv) in zip(ids[i:i + CHUNK], pipe.execute(), strict=True):
                if state is not None:
                    # an applied acknowledgement marks the claim's token done: 'd:<token>'
                    tok = (tok or "").removeprefix("d:")
                    out[job_id] = {"state": state, "tok": tok, "rv": rv or ""}
        return out

    def _states(self, where: dict[str, list[tuple[str, str]]], hashes: dict[str, dict[str, str]]) -> None:
        rep = self.report
        tally: dict[str, Counter[str]] = {q: Counter() for q in self.queues}
        for job_id, q in self.expected.items():
            h = hashes.get(job_id)
            places = where.get(job_id, [])
            if h is None:
                rep.lost += 1
                rep.example(f"lost: {q}/{job_id} has no record (in zsets: {places})")
                continue
            tally[q][h["state"]] += 1
            if h["state"] != "completed":
                rep.not_completed[h["state"]] = rep.not_completed.get(h["state"], 0) + 1
                rep.example(f"not completed: {q}/{job_id} is {h['state']} (in zsets: {places})")
            if places != [(q, h["state"])]:
                rep.state_mismatches += 1
                rep.example(f"state mismatch: {q}/{job_id} record says {h['state']}, zsets {places}")
        unknown = [job_id for job_id in where if job_id not in self.expected]
        rep.unknown_jobs = len(unknown)
        for job_id in unknown[:3]:
            rep.example(f"unknown id {job_id} in {where[job_id]}")
        for q in self.queues:
            n_hash = sum(1 for _ in self.r.scan_iter(match=QueueKeys(q).job("*"), count=1000))
            if n_hash != sum(1 for v in self.expected.values() if v == q):
                rep.count_mismatches.append(f"{q}: {n_hash} job records for "
                                            f"{sum(1 for v in self.expected.values() if v == q)} jobs")
            for state in STATES:
                listed = sum(1 for places in where.values() if (q, state) in places)
                if tally[q][state] != listed:
                    rep.count_mismatches.append(f"{q}.{state}: {tally[q][state]} records say so, "
                                                f"list has {listed}")

    def _completions(self, hashes: dict[str, dict[str, str]]) -> None:
        """Each completion is counted once in metrics and appears once in the events."""
        rep = self.report
        recorded = 0
        seen: Counter[str] = Counter()
        for q in self.queues:
            k = QueueKeys(q)
            metrics = self.r.hgetall(k.metrics)
            recorded += sum(int(v) for f, v in metrics.items() if f.startswith("c:"))
            last = "-"
            while True:
                batch = self.r.xrange(k.events, min=last, count=5000)
                if last != "-":
                    batch = batch[1:]
                if not batch:
                    break
                for _eid, fields in batch:
                    if fields.get("ev") == "completed":
                        seen.update(fields.get("ids", "").split(","))
                last = batch[-1][0]
        rep.completions_recorded = recorded
        twice = [job_id for job_id, n in seen.items() if n > 1]
        n_completed = sum(1 for h in hashes.values() if h["state"] == "completed")
        rep.double_completions = len(twice) + max(0, recorded - n_completed)
        for job_id in twice[:3]:
            rep.example(f"completed twice in the events: {job_id}")

    # -- executions --------------------------------------------------------------

    def _records(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        ids = list(self.expected)
        for i in range(0, len(ids), CHUNK):
            pipe = self.rec.pipeline(transaction=False)
            for job_id in ids[i:i + CHUNK]:
                pipe.lrange(f"x:{job_id}", 0, -1)
            for job_id, lines in zip(ids[i:i + CHUNK], pipe.execute(), strict=True):
                out[job_id] = lines
        return out

    def _executions(self, hashes: dict[str, dict[str, str]]) -> None:
        rep = self.report
        explained: Counter[str] = Counter()
        pids: set[int] = set()
        for job_id, lines in self._records().items():
            runs = parse_executions(lines)
            rep.executions += len(runs)
            pids.update(r.pid for r in runs)
            if len(runs) > 1:
                rep.jobs_run_more_than_once += 1
            toks = Counter(f"{r.pid}|{r.tok}" for r in runs)
            if any(n > 1 for n in toks.values()):
                rep.tokens_run_twice += 1
                rep.example(f"one claim ran twice: {job_id} {lines}")
            h = hashes.get(job_id)
            accepted = self._accepted(job_id, h, runs)
            for run in runs:
                if run is accepted:
                    continue
                if run.plan != "ok":
                    rep.reruns_planned += 1
                    continue
                why = explain(run, self.faults, self.slack_ms)
                if why is None:
                    rep.reruns_unexplained += 1
                    rep.example(f"unexplained re-run of {job_id}: {asdict(run)}; all runs {lines}")
                else:
                    explained[why] += 1
                    if why == "freeze" and run.end_kind == "e":
                        rep.frozen_results_refused += 1
        rep.reruns_explained = dict(explained)
        rep.worker_processes = len(pids)

    def _accepted(self, job_id: str, h: dict[str, str] | None, runs: list[Execution]) -> Execution | None:
        """The run whose result the record holds; a mismatch is a stale overwrite."""
        rep = self.report
        if h is None or h["state"] != "completed":
            return None
        try:
            rv = json.loads(h["rv"])
        except ValueError:
            rv = None
        match = [r for r in runs if r.tok == h["tok"] and r.end_kind == "e"]
        if not isinstance(rv, dict) or rv.get("tok") != h["tok"] or not match:
            rep.stale_overwrites += 1
            rep.example(f"completed {job_id} holds rv {h['rv']!r} under lock token {h['tok']!r}; "
                        f"runs {[asdict(r) for r in runs]}")
            return None
        return match[0]
