from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401  (imported up front, see below)
import pytest
import redis

from tests.redis_proc import RedisProc, require_redis

# hypothesis's pytest plugin imports the package lazily in its terminal-summary hook, through
# pytest's assertion rewriter; on CPython 3.11 that late ast.parse can fail with "AST
# constructor recursion depth mismatch" (python/cpython#106905) and crash the run after the
# tests passed. Imported here, nothing is left to parse at the end.
for _var in ("NO_COLOR", "TEXTUAL_THEME", "LARK_CONFIG", "REDIS_URL"):
    os.environ.pop(_var, None)

_db = itertools.count(1)


@pytest.fixture(scope="session")
def redis_proc() -> Iterator[RedisProc]:
    """One redis-server for the whole session (tests that break Redis start their own)."""
    require_redis()
    proc = RedisProc()
    proc.start()
    yield proc
    proc.cleanup()


@pytest.fixture
def redis_url(redis_proc: RedisProc) -> str:
    """A URL on a freshly flushed database of the session server (16 dbs, rotated)."""
    db = next(_db) % 16
    client = redis.Redis(port=redis_proc.port, db=db)
    client.flushdb()
    client.close()
    return f"redis://127.0.0.1:{redis_proc.port}/{db}"


@pytest.fixture
def fresh_redis() -> Iterator[RedisProc]:
    """A redis-server of this test's own, which the test may stop, kill and restart."""
    require_redis()
    proc = RedisProc()
    proc.start()
    yield proc
    proc.cleanup()


def write_project(root: Path, url: str, jobs: dict[str, str], queues: list[str] | None = None,
                  extra: str = "") -> Path:
    """A throwaway project folder: config plus job files; returns the config path."""
    (root / "jobs").mkdir(parents=True, exist_ok=True)
    for name, text in jobs.items():
        (root / "jobs" / name).write_text(text)
    qs = ", ".join(queues or ["default"])
    cfg = root / "lark.config.yaml"
    cfg.write_text(
        f"jobs:\n  queues: [{qs}]\n  dir: ./jobs\n  options:\n    removeOnComplete: false\n"
        f"    attempts: 1\nredis:\n  url: {url}\n{extra}"
    )
    return cfg
