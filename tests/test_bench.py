"""The benchmarks still run, and every job in them runs exactly once (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.redis_proc import RedisProc

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run(script: str, url: str, *args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, str(BENCH / script), "--redis-url", url, "--quick", *args],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_lark_bench_quick_runs_every_job_once(redis_proc: RedisProc) -> None:
    res = run("lark_bench.py", f"redis://127.0.0.1:{redis_proc.port}/15", "--json")
    # lark_bench asserts the counter equals N after the drain and the latency run
    assert res["jobs"] == 500
    for key in ("bulk_enqueue_jobs_s", "enqueue_jobs_s", "drain_jobs_s", "p99_ms",
                "redis_cmds_per_job", "redis_bytes_per_waiting_job"):
        assert isinstance(res[key], int | float) and res[key] > 0, key


def test_console_bench_quick(redis_proc: RedisProc) -> None:
    res = run("console_bench.py", f"redis://127.0.0.1:{redis_proc.port}/14")
    loaded = res["loaded"]
    assert isinstance(loaded, dict) and loaded["waiting"] == 2000 and loaded["failed"] == 500
