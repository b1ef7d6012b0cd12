"""The CI chaos run: 2,000 jobs, 3 workers, every fault kind about 8 times, in about a
minute. ``LARK_CHAOS_SEED`` picks another seed (default 1)."""

from __future__ import annotations

import os

import pytest

from tests.chaos.harness import FAULT_KINDS, ChaosRun
from tests.redis_proc import require_redis


@pytest.mark.timeout(240)
def test_chaos_quick() -> None:
    require_redis()
    seed = int(os.environ.get("LARK_CHAOS_SEED", "1"))
    report = ChaosRun(seed=seed, duration_s=40, n_jobs=2000, n_workers=3, faults_per_kind=8,
                      verbose=False).run()
    assert report.ok, report.text()
    assert report.jobs == 2000
    assert report.final_counts["completed"] == 2000
    assert sum(report.faults.values()) >= 40, report.faults
    assert set(FAULT_KINDS) <= set(report.faults), report.faults  # every kind actually happened
