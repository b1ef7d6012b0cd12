"""The chaos checker's own logic: pairing execution records and explaining re-runs."""

from __future__ import annotations

from tests.chaos.check import Execution, Fault, explain, parse_executions


def test_records_pair_by_token_and_a_run_without_an_end_stays_open() -> None:
    runs = parse_executions([
        "s|10|w:1:1|1|1000|fail", "s|11|w:2:1|1|1005|ok", "f|10|w:1:1|1|1020",
        "s|12|w:3:1|2|3000|ok", "e|12|w:3:1|2|3030",
    ])
    assert [(r.pid, r.plan, r.end_kind, r.end) for r in runs] == [
        (10, "fail", "f", 1020), (11, "ok", None, None), (12, "ok", "e", 3030)]


def test_a_rerun_is_explained_only_by_a_fault_on_its_worker_while_it_ran() -> None:
    run = Execution(pid=10, tok="t", attempt=1, start=10_000, plan="ok", end_kind="e", end=10_050)
    slack = 1000
    assert explain(run, [], slack) is None
    assert explain(run, [Fault("kill", 10_020, 10_020, pid=11)], slack) is None  # another worker
    assert explain(run, [Fault("freeze", 20_000, 24_000, pid=10)], slack) is None  # long after
    assert explain(run, [Fault("pause", 10_000, 12_000)], slack) is None  # not a reason to re-run
    assert explain(run, [Fault("freeze", 10_500, 14_000, pid=10)], slack) == "freeze"
    assert explain(run, [Fault("conn", 9_500, 9_500, pid=None)], slack) == "conn_all"
    assert explain(run, [Fault("redis_crash", 8_000, 9_200)], slack) == "redis_crash"
    # a worker-specific fault wins over a Redis restart in the same window
    both = [Fault("redis_restart", 10_010, 10_500), Fault("kill", 10_040, 10_040, pid=10)]
    assert explain(run, both, slack) == "kill"


def test_a_run_that_never_ended_is_explained_by_its_worker_dying_any_time_after() -> None:
    run = Execution(pid=10, tok="t", attempt=1, start=10_000, plan="ok")
    assert explain(run, [Fault("kill", 60_000, 60_000, pid=10)], 1000) == "kill"
    assert explain(run, [Fault("kill", 5_000, 5_000, pid=10)], 1000) is None
