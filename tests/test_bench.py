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
    # lark_bench asserts the counter equals N after the drain, the latency and the delayed run
    assert res["jobs"] == 500
    for key in ("bulk_enqueue_jobs_s", "dispatch_sync_jobs_s", "enqueue_jobs_s", "drain_jobs_s",
                "worker_cpu_ms_per_job", "redis_cmds_per_job", "redis_cmds_per_enqueue", "p50_ms",
                "p99_ms", "delayed_late_p99_ms", "redis_bytes_per_waiting_job"):
        assert isinstance(res[key], int | float) and res[key] > 0, key


def test_lark_bench_sections_and_repeats(redis_proc: RedisProc) -> None:
    res = run("lark_bench.py", f"redis://127.0.0.1:{redis_proc.port}/13", "--json",
              "--only", "bulk,drain", "--repeat", "2", "--workers", "2", "--concurrency", "5")
    assert (res["workers"], res["concurrency"]) == (2, 5)
    assert "p99_ms" not in res and "delayed_late_p99_ms" not in res
    runs = res["runs"]
    assert isinstance(runs, list) and len(runs) == 2
    assert all(run["drain_jobs_s"] > 0 and run["bulk_enqueue_jobs_s"] > 0 for run in runs)


def test_lark_bench_help_names_every_section() -> None:
    out = subprocess.run([sys.executable, str(BENCH / "lark_bench.py"), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for word in ("--redis-url", "--only", "--repeat", "--workers", "--concurrency", "bulk", "sync",
                 "enqueue", "drain", "latency", "delayed", "memory", "FLUSHDB"):
        assert word in out.stdout, word


def test_console_bench_quick(redis_proc: RedisProc) -> None:
    res = run("console_bench.py", f"redis://127.0.0.1:{redis_proc.port}/14")
    loaded = res["loaded"]
    assert isinstance(loaded, dict) and loaded["waiting"] == 2000 and loaded["failed"] == 500
