"""The long chaos run under pytest: ``LARK_CHAOS_SECONDS=600 pytest tests/chaos -m slow``
(or ``LARK_SLOW=1``: 600 s). ``LARK_CHAOS_SEED``, ``LARK_CHAOS_JOBS`` (default 50,000)
and ``LARK_CHAOS_WORKERS`` (default 4) vary it. By hand: ``python -m tests.chaos.run``."""

from __future__ import annotations

import os

import pytest

from tests.chaos.harness import ChaosRun
from tests.redis_proc import require_redis

SECONDS = float(os.environ.get("LARK_CHAOS_SECONDS") or 600)
ENABLED = bool(os.environ.get("LARK_CHAOS_SECONDS") or os.environ.get("LARK_SLOW"))


@pytest.mark.slow
@pytest.mark.skipif(not ENABLED, reason="long chaos run: set LARK_CHAOS_SECONDS or LARK_SLOW=1")
@pytest.mark.timeout(int(SECONDS) + 900)
def test_chaos_long() -> None:
    require_redis()
    report = ChaosRun(seed=int(os.environ.get("LARK_CHAOS_SEED", "42")), duration_s=SECONDS,
                      n_jobs=int(os.environ.get("LARK_CHAOS_JOBS", "50000")),
                      n_workers=int(os.environ.get("LARK_CHAOS_WORKERS", "4"))).run()
    assert report.ok, report.text()
