"""Bad inputs and what each gets: a table of cases, each checked against the real thing.

Every case names the bad input and what the user gets: a clear message naming the problem,
the right exit code (CLI) or exception (API), and for jobs: that job fails with a clear
reason while the worker goes on and a good job beside it completes — nothing else lost.

The table is also ``tests/bad_inputs.md`` (linked from the README's troubleshooting
section); ``test_markdown_table_is_in_sync`` keeps the two equal. After changing a case:

    python -m tests.test_bad_inputs > tests/bad_inputs.md
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner, Result

from lark_core.cli import app
from lark_core.config import load_config
from lark_core.discovery import discover
from lark_core.errors import (
    ConfigError,
    DiscoveryError,
    PayloadTooLarge,
    RedisUnavailable,
    SerializationError,
    UnknownQueue,
)
from lark_core.execution import Claim
from lark_core.project import Lark
from lark_core.queue import Queue
from tests.conftest import write_project
from tests.helpers import check_consistency, running_worker, wait_until
from tests.redis_proc import RedisProc

SECRET = "s3cret-pw-0xBAD"
MD_PATH = Path(__file__).with_name("bad_inputs.md")


@dataclass(frozen=True)
class Case:
    """One bad input. ``expect``: fragments the message (or failure reason) must contain."""

    id: str
    area: str
    input: str  # the bad input, for the table
    result: str  # what you get, for the table
    expect: tuple[str, ...] = ()
    code: int | None = None  # CLI exit code
    exc: type[BaseException] | None = None  # API exception
    state: str | None = "failed"  # jobs: the bad job's final state (None: no record is left)
    data: Any = None  # what the area's test needs (config text, files, payload, ...)
    xfail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


CASES: list[Case] = []


def case(*args: Any, **kwargs: Any) -> None:
    CASES.append(Case(*args, **kwargs))


def by_area(area: str) -> list[Any]:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.xfail, strict=False)]
                         if c.xfail else []) for c in CASES if c.area == area]


# ======================================================================================= config
# Loaded with ``load_config`` (ConfigError) and by ``lark-core counts --config P`` (exit 2).
# ``{url}`` is a reachable Redis URL with a password in it: never shown, never touched.

CONFIG = "Config file (`lark.config.yaml`)"
_BASE = "jobs:\n  queues: [default]\n  dir: ./jobs\n"
_REDIS = "redis:\n  url: {url}\n"

case("config-bad-yaml", CONFIG, "YAML syntax error (`jobs: [unclosed`)",
     "exit 2, `<file>:2:1: invalid YAML: expected ',' or ']'`", ("invalid YAML", ":2:1"),
     code=2, exc=ConfigError, data="jobs: [unclosed\n")
case("config-tab-indent", CONFIG, "a tab used for indentation",
     "exit 2, `invalid YAML: found character '\\t' that cannot start any token`",
     ("invalid YAML", "'\\t'"), code=2, exc=ConfigError, data="jobs:\n\tqueues: [a]\n")
case("config-duplicate-key", CONFIG, "one key given twice in a mapping",
     "exit 2, `invalid YAML: duplicate key 'url'`", ("duplicate key 'url'",),
     code=2, exc=ConfigError, data=_BASE + _REDIS + "  url: {url}\n")
case("config-not-a-mapping", CONFIG, "the file is a list, not a mapping",
     "exit 2, `expected a mapping with jobs, redis and worker sections, got ['a', 'b']`",
     ("expected a mapping with jobs, redis and worker sections",), code=2, exc=ConfigError,
     data="- a\n- b\n")
case("config-attempts-word", CONFIG, "`jobs.options.attempts: five`",
     "exit 2, `jobs.options.attempts: expected a positive integer, got 'five'`",
     ("jobs.options.attempts", "positive integer", "'five'"), code=2, exc=ConfigError,
     data=_BASE + "  options:\n    attempts: five\n" + _REDIS)
case("config-attempts-zero", CONFIG, "`jobs.options.attempts: 0`",
     "exit 2, `jobs.options.attempts: expected a positive integer, got 0`",
     ("jobs.options.attempts", "got 0"), code=2, exc=ConfigError,
     data=_BASE + "  options:\n    attempts: 0\n" + _REDIS)
case("config-backoff-type", CONFIG, "`backoff: {type: linear, delay: 100}`",
     "exit 2, `jobs.options.backoff.type: expected fixed or exponential, got 'linear'`",
     ("jobs.options.backoff.type", "fixed or exponential", "'linear'"), code=2, exc=ConfigError,
     data=_BASE + "  options:\n    backoff: {type: linear, delay: 100}\n" + _REDIS)
case("config-backoff-no-delay", CONFIG, "`backoff: {type: fixed}` (no delay)",
     "exit 2, `jobs.options.backoff.delay: missing; expected a delay in milliseconds`",
     ("jobs.options.backoff.delay", "missing"), code=2, exc=ConfigError,
     data=_BASE + "  options:\n    backoff: {type: fixed}\n" + _REDIS)
case("config-remove-on-complete", CONFIG, "`removeOnComplete: lots`",
     "exit 2, `jobs.options.removeOnComplete: expected true, false, a count >= 0 or a mapping "
     "{age: seconds, count: N}, got 'lots'`",
     ("jobs.options.removeOnComplete", "'lots'"), code=2, exc=ConfigError,
     data=_BASE + "  options:\n    removeOnComplete: lots\n" + _REDIS)
case("config-queues-not-list", CONFIG, "`jobs.queues: default` (a string, not a list)",
     "exit 2, `jobs.queues: expected a non-empty list of queue names, got 'default'`",
     ("jobs.queues", "non-empty list"), code=2, exc=ConfigError,
     data="jobs:\n  queues: default\n  dir: ./jobs\n" + _REDIS)
case("config-queue-name", CONFIG, "a queue name with `{`, `}`, `:` or a space (`a{b}`)",
     "exit 2, `jobs.queues[0]: expected a queue name without '{', '}', ':' or whitespace, got 'a{b}'`",
     ("jobs.queues[0]", "'a{b}'"), code=2, exc=ConfigError,
     data="jobs:\n  queues: ['a{b}']\n  dir: ./jobs\n" + _REDIS)
case("config-queue-duplicate", CONFIG, "a queue listed twice",
     "exit 2, `jobs.queues[1]: duplicate queue name 'a'`", ("jobs.queues[1]", "duplicate"),
     code=2, exc=ConfigError, data="jobs:\n  queues: [a, a]\n  dir: ./jobs\n" + _REDIS)
case("config-max-payload", CONFIG, "`jobs.max_payload_bytes: -1`",
     "exit 2, `jobs.max_payload_bytes: expected a positive integer, got -1`",
     ("jobs.max_payload_bytes", "got -1"), code=2, exc=ConfigError,
     data="jobs:\n  queues: [default]\n  dir: ./jobs\n  max_payload_bytes: -1\n" + _REDIS)
case("config-concurrency", CONFIG, "`worker.concurrency: 0`",
     "exit 2, `worker.concurrency: expected a positive integer, got 0`",
     ("worker.concurrency", "got 0"), code=2, exc=ConfigError,
     data=_BASE + _REDIS + "worker:\n  concurrency: 0\n")
case("config-lock-ms", CONFIG, "`worker.lock_ms: 5`",
     "exit 2, `worker.lock_ms: expected an integer >= 100 (milliseconds), got 5`",
     ("worker.lock_ms", ">= 100", "got 5"), code=2, exc=ConfigError,
     data=_BASE + _REDIS + "worker:\n  lock_ms: 5\n")
case("config-url-scheme", CONFIG, "`redis.url: http://127.0.0.1:6379`",
     "exit 2, `redis.url: expected a redis://, rediss:// or unix:// url, got 'http://127.0.0.1:6379'`",
     ("redis.url", "redis://, rediss:// or unix://"), code=2, exc=ConfigError,
     data=_BASE + "redis:\n  url: http://127.0.0.1:6379\n")
case("config-url-bad-with-password", CONFIG, "a malformed url holding a password",
     "exit 2, `redis.url: expected a port from 1 to 65535 in the url, got 'redis://:***@[bad'` "
     "(password masked)", ("redis.url", ":***@"), code=2, exc=ConfigError,
     data=_BASE + f"redis:\n  url: 'redis://:{SECRET}@[bad'\n")
case("config-url-db", CONFIG, "`redis.url: redis://127.0.0.1:6379/99x`",
     "exit 2, `redis.url: expected the url path to be a database number`",
     ("redis.url", "database number"), code=2, exc=ConfigError,
     data=_BASE + "redis:\n  url: redis://127.0.0.1:6379/99x\n")
case("config-port-word", CONFIG, "`redis.port: abc` (also via `${PORT:-abc}`)",
     "exit 2, `redis.port: expected a port from 1 to 65535, got 'abc'`",
     ("redis.port", "1 to 65535", "'abc'"), code=2, exc=ConfigError,
     data=_BASE + "redis:\n  host: 127.0.0.1\n  port: ${LARK_TEST_UNSET_PORT:-abc}\n")
case("config-embedded-and-url", CONFIG, "`redis.embedded: true` together with `redis.url`",
     "exit 2, `redis.embedded: cannot be combined with redis.url/host`",
     ("redis.embedded", "cannot be combined"), code=2, exc=ConfigError,
     data=_BASE + _REDIS + "  embedded: true\n")
case("config-tls", CONFIG, "`redis.tls: maybe`",
     "exit 2, `redis.tls: expected true, false or a mapping {ca_file, cert_file, key_file, verify}`",
     ("redis.tls", "got 'maybe'"), code=2, exc=ConfigError,
     data=_BASE + _REDIS + "  tls: maybe\n")
case("config-unknown-key", CONFIG, "an unknown key (`redis.colour: blue`)",
     "a warning `<file>: redis.colour: unknown key (ignored)`; the command runs (exit 0)",
     ("redis.colour: unknown key",), code=0, exc=None,
     data=_BASE + "redis:\n  url: {plain_url}\n  colour: blue\n")


@pytest.mark.parametrize("c", by_area(CONFIG))
def test_config(c: Case, tmp_path: Path, redis_url: str) -> None:
    url = redis_url.replace("redis://", f"redis://:{SECRET}@")
    (tmp_path / "jobs").mkdir()
    cfg = tmp_path / "lark.config.yaml"
    cfg.write_text(c.data.replace("{url}", url).replace("{plain_url}", redis_url))
    if c.exc is not None:
        with pytest.raises(c.exc) as info:
            load_config(cfg)
        assert_mentions(str(info.value), c)
    else:
        load_config(cfg)
    result = cli("counts", "--config", str(cfg))
    assert result.exit_code == c.code, output(result)
    assert_mentions(result.stderr, c)
    assert SECRET not in output(result)
    if c.code:
        assert "invalid config" in result.stderr and str(cfg) in result.stderr
        assert "Traceback" not in output(result)
        assert db_size(redis_url) == 0  # nothing touched in Redis


# ================================================================================ environment

ENV = "Finding the config and reaching Redis"

case("env-config-missing", ENV, "`--config` naming a file that does not exist",
     "exit 2, `config file not found: <path> (given with --config); run lark-core init ...`",
     ("config file not found", "nope.yaml", "lark-core init"), code=2, exc=ConfigError,
     data="explicit")
case("env-no-config", ENV, "no `--config`, no `$LARK_CONFIG`, no `./lark.config.yaml`",
     "exit 2, `no config file found: looked for <cwd>/lark.config.yaml ($LARK_CONFIG is not set)`",
     ("no config file found", "$LARK_CONFIG"), code=2, exc=ConfigError, data="none")
case("env-lark-config-missing", ENV, "`$LARK_CONFIG` naming a file that does not exist",
     "exit 2, `config file not found: <path> (from $LARK_CONFIG)`",
     ("config file not found", "from $LARK_CONFIG"), code=2, exc=ConfigError, data="env")
case("env-redis-unreachable", ENV, "Redis not reachable (`redis://:pw@127.0.0.1:1/0`)",
     "exit 1 within seconds, `cannot reach Redis at redis://:***@127.0.0.1:1/0: ... Connect "
     "call failed`; API: `RedisUnavailable`", ("cannot reach Redis", "redis://:***@127.0.0.1:1/0"),
     code=1, exc=RedisUnavailable, data="unreachable")
case("env-wrong-password", ENV, "a wrong Redis password",
     "exit 1, `cannot reach Redis at redis://lark-bad-inputs:***@...: invalid username-password "
     "pair`; API: `RedisUnavailable ... refused the credentials`",
     ("Redis", "lark-bad-inputs:***@", "invalid username-password pair"), code=1,
     exc=RedisUnavailable, data="password")
case("env-unknown-queue", ENV, "a queue that is not configured (`project.queue('nope')`, "
     "`queues.nope`)", "`UnknownQueue: queue 'nope' is not configured (jobs.queues: default)`",
     ("queue 'nope' is not configured", "jobs.queues: default"), exc=UnknownQueue, data="queue")


@pytest.fixture
def acl_user(redis_proc: RedisProc) -> Iterator[str]:
    """A Redis user with a password, on the session server."""
    admin = redis_proc.client()
    admin.acl_setuser("lark-bad-inputs", enabled=True, passwords=["+right-pw"], keys=["*"],
                      commands=["+@all"], channels=["*"])
    try:
        yield "lark-bad-inputs"
    finally:
        admin.acl_deluser("lark-bad-inputs")
        admin.close()


@pytest.mark.parametrize("c", by_area(ENV))
def test_environment(c: Case, tmp_path: Path, redis_url: str, redis_proc: RedisProc,
                     acl_user: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LARK_CONFIG", raising=False)
    env: dict[str, str] = {}
    args = ["counts"]
    if c.data == "explicit":
        args += ["--config", str(tmp_path / "nope.yaml")]
    elif c.data == "env":
        env["LARK_CONFIG"] = str(tmp_path / "nope.yaml")
    elif c.data in ("unreachable", "password"):
        url = (f"redis://:{SECRET}@127.0.0.1:1/0" if c.data == "unreachable" else
               f"redis://{acl_user}:{SECRET}@127.0.0.1:{redis_proc.port}/0")
        cfg = write_project(tmp_path, url, {})
        args += ["--config", str(cfg)]
        project = Lark(config_path=cfg)
        with pytest.raises(RedisUnavailable) as info:
            asyncio.run(_counts_and_close(project))
        assert_mentions(str(info.value), c, skip=("invalid username-password pair",))
        assert SECRET not in str(info.value)
    elif c.data == "queue":
        project = Lark(config_path=write_project(tmp_path, redis_url, {}))
        with pytest.raises(UnknownQueue) as info:
            project.queue("nope")
        assert_mentions(str(info.value), c)
        return
    if c.exc is ConfigError:
        with pytest.raises(ConfigError) as cfg_info:
            load_config(args[2] if len(args) > 2 else None, env=env)
        assert_mentions(str(cfg_info.value), c)
    started = time.monotonic()
    result = cli(*args, env=env)
    assert result.exit_code == c.code, output(result)
    assert time.monotonic() - started < 10
    assert_mentions(result.stderr, c)
    assert SECRET not in output(result) and "Traceback" not in output(result)


async def _counts_and_close(project: Lark) -> None:
    try:
        await project.queue("default").get_job_counts()
    finally:
        await project.close()


# ================================================================================== job files
# ``discover(config)`` raises DiscoveryError naming the file; ``lark-core worker`` exits 2.

JOBFILES = "Job files (`jobs.dir`)"
_GOOD = "from lark_core import Job\n\n\nclass {name}(Job):\n    async def handle(self, payload):\n" \
        "        return payload\n"

case("jobs-syntax-error", JOBFILES, "a job file with a syntax error",
     "exit 2, `<path>/broken.py: failed to import: SyntaxError: ...`",
     ("broken.py", "failed to import", "SyntaxError"), code=2, exc=DiscoveryError,
     data={"broken.py": "def handle(:\n    pass\n"})
case("jobs-import-error", JOBFILES, "a job file importing a module that is not installed",
     "exit 2, `<path>/needs.py: failed to import: ModuleNotFoundError: No module named "
     "'no_such_module_xyz'`", ("needs.py", "ModuleNotFoundError", "no_such_module_xyz"), code=2,
     exc=DiscoveryError, data={"needs.py": "import no_such_module_xyz  # noqa\n"})
case("jobs-raises-on-import", JOBFILES, "a job file that raises while imported",
     "exit 2, `<path>/explodes.py: failed to import: RuntimeError: boom at import`",
     ("explodes.py", "RuntimeError: boom at import"), code=2, exc=DiscoveryError,
     data={"explodes.py": "raise RuntimeError('boom at import')\n"})
case("jobs-duplicate-class", JOBFILES, "two files defining a job of the same class name",
     "exit 2, `<path>/b.py: job name 'Same' is also defined in <path>/a.py`",
     ("b.py", "'Same'", "also defined in", "a.py"), code=2, exc=DiscoveryError,
     data={"a.py": _GOOD.format(name="Same"), "b.py": _GOOD.format(name="Same")})
case("jobs-duplicate-name-attr", JOBFILES, "two classes with the same `name` attribute",
     "exit 2, `<path>/two.py: job name 'send' is also defined in <path>/one.py`",
     ("two.py", "'send'", "also defined in", "one.py"), code=2, exc=DiscoveryError,
     data={"one.py": _GOOD.format(name="A") + "    name = 'send'\n",
           "two.py": _GOOD.format(name="B") + "    name = 'send'\n"})
case("jobs-no-handle", JOBFILES, "a concrete Job class without `handle()`",
     "exit 2, `<path>/lazy.py: job 'Lazy' has no handle() method (set abstract = True on a "
     "base class)`", ("lazy.py", "'Lazy'", "no handle()"), code=2, exc=DiscoveryError,
     data={"lazy.py": "from lark_core import Job\n\n\nclass Lazy(Job):\n    pass\n"})
case("jobs-unknown-queue", JOBFILES, "a job naming a queue that is not configured",
     "exit 2, `<path>/mail.py: job 'Mail' uses queue 'emails', which is not in jobs.queues "
     "(default)`", ("mail.py", "'Mail'", "'emails'", "not in jobs.queues"), code=2,
     exc=DiscoveryError, data={"mail.py": _GOOD.format(name="Mail") + "    queue = 'emails'\n"})
case("jobs-bad-file-name", JOBFILES, "a job file whose name is not an identifier (`send-mail.py`)",
     "exit 2, `<path>/send-mail.py: file and folder names must be valid Python identifiers`",
     ("send-mail.py", "valid Python identifiers"), code=2, exc=DiscoveryError,
     data={"send-mail.py": _GOOD.format(name="Mail")})
case("jobs-dir-missing", JOBFILES, "`jobs.dir` naming a folder that does not exist",
     "exit 2, `jobs.dir: folder <path>/jobs does not exist (set jobs.dir in the config)`",
     ("jobs.dir", "does not exist"), code=2, exc=DiscoveryError, data=None)


@pytest.mark.parametrize("c", by_area(JOBFILES))
def test_job_files(c: Case, tmp_path: Path, redis_url: str) -> None:
    cfg = write_project(tmp_path, redis_url, c.data or {})
    if c.data is None:
        (tmp_path / "jobs").rmdir()
    with pytest.raises(DiscoveryError) as info:
        discover(load_config(cfg))
    assert_mentions(str(info.value), c)
    result = cli("worker", "--config", str(cfg))
    assert result.exit_code == 2, output(result)
    assert_mentions(result.stderr, c)
    assert "Traceback" not in output(result)
    assert db_size(redis_url) == 0  # the worker stopped before touching Redis


# =================================================================================== payloads
# ``await queue.add(name, payload)``: nothing is enqueued.

PAYLOADS = "Payloads (`queue.add`, `Job.dispatch`)"


def _deep(levels: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(levels):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


def _circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


case("payload-object", PAYLOADS, "a payload that is not JSON (`object()`)",
     "`SerializationError` (a `TypeError`): `payload is not JSON-serialisable: Object of type "
     "object is not JSON serializable`", ("payload is not JSON-serialisable", "object"),
     exc=SerializationError, data=lambda: {"x": object()})
case("payload-set", PAYLOADS, "a set", "`SerializationError`: `... Object of type set ...`",
     ("payload is not JSON-serialisable", "set"), exc=SerializationError, data=lambda: {1, 2})
case("payload-bytes", PAYLOADS, "bytes", "`SerializationError`: `... Object of type bytes ...`",
     ("bytes",), exc=SerializationError, data=lambda: b"raw")
case("payload-nan", PAYLOADS, "`float('nan')` inside the payload",
     "`SerializationError`: `... Out of range float values are not JSON compliant`",
     ("Out of range float",), exc=SerializationError, data=lambda: {"x": math.nan})
case("payload-infinity", PAYLOADS, "`math.inf`",
     "`SerializationError`: `... Out of range float values are not JSON compliant`",
     ("Out of range float",), exc=SerializationError, data=lambda: [math.inf])
case("payload-circular", PAYLOADS, "a list that contains itself",
     "`SerializationError`: `... Circular reference detected`", ("Circular reference",),
     exc=SerializationError, data=_circular)
case("payload-deep", PAYLOADS, "100,000 levels of nesting",
     "`SerializationError`: `... maximum recursion depth exceeded ...` (no crash)",
     ("payload is not JSON-serialisable", "recursion"), exc=SerializationError,
     data=lambda: _deep(100_000))
case("payload-tuple-key", PAYLOADS, "a dict with a tuple key",
     "`SerializationError`: `... keys must be str, int, float, bool or None, not tuple`",
     ("keys must be str",), exc=SerializationError, data=lambda: {(1, 2): "x"})
case("payload-lone-surrogate", PAYLOADS, "a string with a lone surrogate (`'\\ud800'`, not UTF-8)",
     "`SerializationError`: `payload is not JSON-serialisable: it contains '\\ud800', a lone "
     "surrogate, which is not valid UTF-8`", ("lone surrogate", "not valid UTF-8"),
     exc=SerializationError, data=lambda: {"s": "ok \ud800"})
case("payload-huge-int", PAYLOADS, "an int of 5,000 digits",
     "`SerializationError`: `... Exceeds the limit (4300 digits) for integer string conversion`",
     ("4300 digits",), exc=SerializationError, data=lambda: 10**5000)
case("payload-10mb", PAYLOADS, "a 10 MB payload (over `jobs.max_payload_bytes`, 1 MiB)",
     "`PayloadTooLarge` (a `ValueError`): `payload is 10000002 bytes encoded, over "
     "jobs.max_payload_bytes (1048576)`", ("10000002 bytes", "jobs.max_payload_bytes (1048576)"),
     exc=PayloadTooLarge, data=lambda: "x" * 10_000_000)

OPTIONS = "Job options (`queue.add(..., **opts)`, `dispatch`)"
case("option-priority-negative", OPTIONS, "`priority=-1`",
     "`ValueError: priority: expected an integer 0..2097152, got -1`",
     ("priority", "0..2097152", "-1"), exc=ValueError, data={"priority": -1})
case("option-priority-too-high", OPTIONS, "`priority=2_097_153`",
     "`ValueError: priority: expected an integer 0..2097152, got 2097153`",
     ("priority", "2097153"), exc=ValueError, data={"priority": 2_097_153})
case("option-priority-float", OPTIONS, "`priority=1.5`",
     "`ValueError: priority: expected an integer, got 1.5`", ("priority", "1.5"), exc=ValueError,
     data={"priority": 1.5})
case("option-delay-negative", OPTIONS, "`delay=-5`",
     "`ValueError: delay (ms): expected an integer >= 0, got -5`", ("delay (ms)", "-5"),
     exc=ValueError, data={"delay": -5})
case("option-delay-text", OPTIONS, "`delay='5'`",
     "`ValueError: delay (ms): expected an integer, got '5'`", ("delay (ms)", "'5'"),
     exc=ValueError, data={"delay": "5"})
case("option-job-id-space", OPTIONS, "`job_id='a b'`",
     "`ValueError: job_id: expected a non-empty string without spaces, got 'a b'`",
     ("job_id", "'a b'"), exc=ValueError, data={"job_id": "a b"})
case("option-unknown", OPTIONS, "an unknown option (`colour='red'`)",
     "`TypeError: unknown job option 'colour'`", ("unknown job option 'colour'",), exc=TypeError,
     data={"colour": "red"})
case("option-attempts-zero", OPTIONS, "`attempts=0`",
     "`ValueError: attempts: expected a positive integer, got 0`", ("attempts", "got 0"),
     exc=ValueError, data={"attempts": 0})
case("option-backoff", OPTIONS, "`backoff={'type': 'linear', 'delay': 1}`",
     "`ValueError: backoff.type: expected fixed or exponential, got 'linear'`",
     ("backoff.type", "'linear'"), exc=ValueError, data={"backoff": {"type": "linear", "delay": 1}})
case("option-timeout", OPTIONS, "`timeout=-1`",
     "`ValueError: timeout: expected a positive number of seconds, got -1`", ("timeout", "-1"),
     exc=ValueError, data={"timeout": -1})
case("option-empty-name", OPTIONS, "an empty job name (`queue.add('', {})`)",
     "`ValueError: job name: expected a non-empty string, got ''`", ("job name", "non-empty"),
     exc=ValueError, data={"name": ""})
case("option-name-surrogate", OPTIONS, "a job name with a lone surrogate (`'X\\ud800'`)",
     "`ValueError: job name: 'X\\ud800' is not valid UTF-8 (it has a lone surrogate)`",
     ("job name", "not valid UTF-8"), exc=ValueError, data={"name": "X\ud800"})
case("option-job-id-surrogate", OPTIONS, "a `job_id` with a lone surrogate",
     "`ValueError: job_id: 'id\\ud800' is not valid UTF-8 (it has a lone surrogate)`",
     ("job_id", "not valid UTF-8"), exc=ValueError, data={"job_id": "id\ud800"})


@pytest.fixture
async def queue(tmp_path: Path, redis_url: str) -> AsyncIterator[Queue]:
    project = Lark(config_path=write_project(tmp_path, redis_url, {"jobs.py": JOBS}))
    yield project.queue("default")
    await project.close()


@pytest.mark.parametrize("c", by_area(PAYLOADS) + by_area(OPTIONS))
async def test_payloads_and_options(c: Case, queue: Queue) -> None:
    if c.area == PAYLOADS:
        name, payload, opts = "Echo", c.data(), {}
    else:
        opts = dict(c.data)
        name, payload = opts.pop("name", "Echo"), {}
    assert c.exc is not None
    with pytest.raises(c.exc) as info:
        await queue.add(name, payload, **opts)
    assert_mentions(str(info.value), c)
    if c.exc is SerializationError:
        assert isinstance(info.value, TypeError)
    if c.exc is PayloadTooLarge:
        assert isinstance(info.value, ValueError)
    with pytest.raises(c.exc):  # the same from a sync caller
        queue.add_sync(name, payload, **opts)
    assert sum((await queue.get_job_counts()).values()) == 0  # nothing enqueued
    assert await queue.redis.dbsize() == 0


# ============================================================================ records in Redis
# A job record written by a foreign producer or altered by hand, then a worker runs: that job
# gets what the table says, a good job claimed beside it and one added after both complete.

RECORDS = "Job records written or altered in Redis by hand"
Alter = Callable[[Queue, redis.Redis], Awaitable[str]]


def _altered(hset: dict[str, bytes | str] | None = None, hdel: tuple[str, ...] = ()) -> Alter:
    async def alter(q: Queue, raw: redis.Redis) -> str:
        job_id = (await q.add("Echo", {"n": 1})).id
        if hset:
            raw.hset(q.keys.job(job_id), mapping=hset)  # type: ignore[arg-type]
        if hdel:
            raw.hdel(q.keys.job(job_id), *hdel)
        return job_id

    return alter


def _foreign(fields: dict[str, bytes | str]) -> Alter:
    """A job written straight to Redis by another producer (not through ``add``)."""

    async def write(q: Queue, raw: redis.Redis) -> str:
        job_id = "foreign-1"
        raw.hset(q.keys.job(job_id), mapping=fields)  # type: ignore[arg-type]
        raw.zadd(q.keys.wait, {job_id: 0})
        return job_id

    return write


async def _deleted(q: Queue, raw: redis.Redis) -> str:
    job_id = (await q.add("Echo", {"n": 1})).id
    raw.delete(q.keys.job(job_id))
    return job_id


async def _not_a_hash(q: Queue, raw: redis.Redis) -> str:
    job_id = (await q.add("Echo", {"n": 1})).id
    raw.delete(q.keys.job(job_id))
    raw.set(q.keys.job(job_id), "I am a string")
    return job_id


async def _delayed_without_prio(q: Queue, raw: redis.Redis) -> str:
    job_id = (await q.add("Echo", {"n": 1}, delay=600_000)).id
    raw.hdel(q.keys.job(job_id), "prio")
    raw.zadd(q.keys.delayed, {job_id: 1}, xx=True)  # and it is due now
    return job_id


case("record-foreign-invalid-utf8", RECORDS, "a foreign producer writes a payload that is not "
     "UTF-8 (bytes `\\xff\\xfe`) straight into a job hash and the wait set",
     "that job fails: `corrupt job record: payload or options are not valid UTF-8 JSON (...)`",
     ("corrupt job record", "not valid UTF-8 JSON"),
     data=_foreign({"name": "Echo", "data": b'{"x": "\xff\xfe"}', "prio": "0", "ts": "1"}))
case("record-foreign-minimal", RECORDS, "a foreign producer writes only `name` and `data`",
     "it runs and completes (missing counters and options take their defaults)", (),
     state="completed", data=_foreign({"name": "Echo", "data": '{"from": "elsewhere"}'}))
case("record-data-missing", RECORDS, "the `data` field deleted",
     "that job fails: `corrupt job record: payload or options are not valid UTF-8 JSON "
     "(Expecting value ...)`", ("corrupt job record",), data=_altered(hdel=("data",)))
case("record-data-wrong-type", RECORDS, "`data` set to `42` (JSON, but not the object the "
     "producer wrote)", "payloads are any JSON value: the handler gets `42` (Echo returns it) and "
     "the job completes", (), state="completed", data=_altered({"data": "42"}))
case("record-data-not-json", RECORDS, "`data` set to `nope {`",
     "that job fails: `corrupt job record: payload or options are not valid UTF-8 JSON (...)`",
     ("corrupt job record", "JSON"), data=_altered({"data": "nope {"}))
case("record-opts-not-json", RECORDS, "`opts` set to `{{`",
     "that job fails: `corrupt job record: payload or options are not valid UTF-8 JSON (...)`",
     ("corrupt job record",), data=_altered({"opts": "{{"}))
case("record-opts-not-object", RECORDS, "`opts` set to the JSON list `[1]`",
     "ignored: the job runs with the class and config options and completes", (),
     state="completed", data=_altered({"opts": "[1]"}))
case("record-opts-bad-value", RECORDS, "`opts` with `{\"attempts\": \"many\"}`",
     "that option falls back to the class/config value; the job completes", (), state="completed",
     data=_altered({"opts": '{"attempts": "many"}'}))
case("record-prio-not-number", RECORDS, "`prio` set to `high`",
     "that job fails: `corrupt job record: field 'prio' is not a number ('high')`",
     ("corrupt job record", "field 'prio' is not a number", "'high'"),
     data=_altered({"prio": "high"}))
case("record-ts-not-number", RECORDS, "`ts` set to `yesterday`",
     "that job fails: `corrupt job record: field 'ts' is not a number ('yesterday')`",
     ("field 'ts' is not a number",), data=_altered({"ts": "yesterday"}))
case("record-stc-not-number", RECORDS, "`stc` (stalled count) set to `x`",
     "that job fails: `corrupt job record: field 'stc' is not a number ('x')`",
     ("field 'stc' is not a number",), data=_altered({"stc": "x"}))
case("record-atm-not-number", RECORDS, "`atm` (attempts made) set to `x`",
     "the count restarts: the job runs as attempt 1 and completes", (), state="completed",
     data=_altered({"atm": "x"}))
case("record-name-unknown", RECORDS, "`name` of a job no worker registers (`NoSuchJob`)",
     "that job fails: `unknown job name 'NoSuchJob': no Job class of that name is registered in "
     "this worker`", ("unknown job name 'NoSuchJob'",), data=_altered({"name": "NoSuchJob"}))
case("record-name-a-path", RECORDS, "`name` set to an import path (`os.system`)",
     "that job fails: `unknown job name 'os.system' ...` (nothing is ever imported from Redis)",
     ("unknown job name 'os.system'",), data=_altered({"name": "os.system"}))
case("record-name-missing", RECORDS, "the `name` field deleted",
     "that job fails: `corrupt job record: no job name (field 'name' is missing)`",
     ("corrupt job record", "no job name"), data=_altered(hdel=("name",)))
case("record-deleted", RECORDS, "the job hash deleted while its id is in the wait set",
     "the dangling id is dropped; nothing else changes", (), state=None, data=_deleted)
case("record-not-a-hash", RECORDS, "the job key replaced by a string",
     "the id is dropped and the key left alone; the rest of the batch is claimed and runs", (),
     state=None, data=_not_a_hash)
case("record-delayed-no-prio", RECORDS, "a delayed job's `prio` deleted, then it falls due",
     "it is promoted at priority 0 and completes", (), state="completed",
     data=_delayed_without_prio)

# ================================================================================== handlers
HANDLERS = "What a handler does"
JOBS = '''
from lark_core import Job


class Echo(Job):
    async def handle(self, payload):
        return payload


class Unprintable(Job):
    async def handle(self, payload):
        class Odd(Exception):
            def __str__(self):
                raise RuntimeError("no str for you")
        raise Odd()


class ReturnsSet(Job):
    async def handle(self, payload):
        return {1, 2}


class ReturnsNaN(Job):
    async def handle(self, payload):
        return float("nan")


class ReturnsSurrogate(Job):
    async def handle(self, payload):
        return "\\ud800"


class LogsSurrogate(Job):
    async def handle(self, payload):
        self.info("odd text \\ud800")
        return "logged"


class RaisesSurrogate(Job):
    async def handle(self, payload):
        raise ValueError("odd text \\ud800")


class BadProgress(Job):
    async def handle(self, payload):
        await self.update_progress(object())


class Interrupts(Job):
    async def handle(self, payload):
        raise KeyboardInterrupt


class SyncInterrupts(Job):
    def handle(self, payload):
        raise KeyboardInterrupt


class Exits(Job):
    timeout = 30

    async def handle(self, payload):
        raise SystemExit(3)


class RaisesBase(Job):
    async def handle(self, payload):
        raise BaseException("not an Exception")
'''


def _dispatch(name: str) -> Alter:
    async def add(q: Queue, raw: redis.Redis) -> str:
        return (await q.add(name, {})).id

    return add


case("handler-unprintable-exception", HANDLERS, "raises an exception whose `str()` raises",
     "that job fails: `Odd: <unprintable Odd: str() raised RuntimeError>`",
     ("<unprintable Odd",), data=_dispatch("Unprintable"))
case("handler-returns-set", HANDLERS, "returns a value that is not JSON (a set)",
     "that job fails: `SerializationError: return value is not JSON-serialisable: Object of type "
     "set ...`", ("return value is not JSON-serialisable", "set"), data=_dispatch("ReturnsSet"))
case("handler-returns-nan", HANDLERS, "returns NaN",
     "that job fails: `SerializationError: return value ... Out of range float values ...`",
     ("return value", "Out of range float"), data=_dispatch("ReturnsNaN"))
case("handler-returns-surrogate", HANDLERS, "returns a string with a lone surrogate",
     "that job fails: `SerializationError: return value ... a lone surrogate, which is not valid "
     "UTF-8`", ("return value", "lone surrogate"), data=_dispatch("ReturnsSurrogate"))
case("handler-logs-surrogate", HANDLERS, "logs a string with a lone surrogate",
     "the line is stored with `\\ud800` escaped; the job completes", (), state="completed",
     data=_dispatch("LogsSurrogate"), extra={"log": "odd text \\ud800"})
case("handler-raises-surrogate", HANDLERS, "raises an exception whose message has a lone "
     "surrogate", "that job fails: `ValueError: odd text \\ud800` (escaped)",
     ("ValueError: odd text \\ud800",), data=_dispatch("RaisesSurrogate"))
case("handler-bad-progress", HANDLERS, "reports progress that is not JSON",
     "that job fails: `SerializationError: progress is not JSON-serialisable: ...`",
     ("progress is not JSON-serialisable",), data=_dispatch("BadProgress"))
case("handler-keyboard-interrupt", HANDLERS, "raises `KeyboardInterrupt`",
     "that job fails: `KeyboardInterrupt`; the worker does not stop", ("KeyboardInterrupt",),
     data=_dispatch("Interrupts"))
case("handler-sync-keyboard-interrupt", HANDLERS, "a plain `def` handler raises "
     "`KeyboardInterrupt` in its thread", "that job fails: `KeyboardInterrupt`",
     ("KeyboardInterrupt",), data=_dispatch("SyncInterrupts"))
case("handler-system-exit", HANDLERS, "calls `sys.exit(3)` (with a timeout set)",
     "that job fails: `SystemExit: 3`; the worker does not exit", ("SystemExit: 3",),
     data=_dispatch("Exits"))
case("handler-base-exception", HANDLERS, "raises a bare `BaseException`",
     "that job fails: `BaseException: not an Exception` (not left active)",
     ("BaseException: not an Exception",), data=_dispatch("RaisesBase"))


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.parametrize("c", by_area(RECORDS) + by_area(HANDLERS))
async def test_jobs(c: Case, tmp_path: Path, redis_url: str, raw: redis.Redis) -> None:
    project = Lark(config_path=write_project(tmp_path, redis_url, {"jobs.py": JOBS}))
    q = project.queue("default")
    try:
        bad = await c.data(q, raw)
        beside = await q.add("Echo", "claimed in the same batch")
        async with running_worker(project, lock_ms=60_000) as worker:
            await wait_done(q, beside.id)
            after = await q.add("Echo", "added after")
            await wait_done(q, after.id)
            if c.state is not None:
                rec = await wait_until(lambda: _finished(q, bad), what=f"job {bad} to finish")
                assert rec.state == c.state, (rec.state, rec.failed_reason)
                if c.state == "failed":
                    assert_mentions(rec.failed_reason or "", c)
                if "log" in c.extra:
                    assert any(c.extra["log"] in line for line in await rec.get_logs())
            assert not worker.test_task.done()  # type: ignore[attr-defined]
        if c.state is None:
            raw.delete(q.keys.job(bad))  # a key that held no job (or nothing) is left alone
            assert await q.get_job_counts() == {**ZERO, "completed": 2}
        await check_consistency(q)
    finally:
        await project.close()


async def _finished(q: Queue, job_id: str) -> Any:
    rec = await q.get_job(job_id)
    return rec if rec is not None and rec.state in ("completed", "failed") else None


async def wait_done(q: Queue, job_id: str) -> None:
    async def done() -> bool:
        rec = await q.get_job(job_id)
        return rec is not None and rec.state == "completed"

    await wait_until(done, timeout=10, what=f"the good job {job_id} to complete")


ZERO = {"waiting": 0, "active": 0, "delayed": 0, "completed": 0, "failed": 0, "paused": 0}


async def test_an_unexpected_error_in_the_worker_loop_does_not_stop_the_queue(
        tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Whatever goes wrong in a round trip (here: an injected error reading a claim reply),
    the queue is served on, and the jobs that round trip claimed come back as stalled."""
    caplog.set_level(logging.ERROR, logger="lark.worker")
    real = Claim.parse
    injected: list[bool] = []

    def parse_once_badly(cls: type[Claim], queue: str, reply: list[Any]) -> list[Claim]:
        if len(reply) > 2 and not injected:
            injected.append(True)
            raise RuntimeError("injected fault")
        return real(queue, reply)

    monkeypatch.setattr(Claim, "parse", classmethod(parse_once_badly))
    project = Lark(config_path=write_project(tmp_path, redis_url, {"jobs.py": JOBS}))
    q = project.queue("default")
    try:
        first = await q.add("Echo", "claimed by the faulty round trip")
        async with running_worker(project, lock_ms=300, stalled_interval_ms=100) as worker:
            await wait_until(lambda: injected, what="the injected fault")
            after = await q.add("Echo", "added after")
            await wait_done(q, after.id)
            await wait_done(q, first.id)
            assert not worker.test_task.done()  # type: ignore[attr-defined]
        rec = await q.get_job(first.id)
        assert rec is not None and rec.stalled_count == 1
        assert "worker loop error" in caplog.text and "injected fault" in caplog.text
        await check_consistency(q)
    finally:
        await project.close()


# ======================================================================================= CLI
# ``lark-core ...`` against a project holding one waiting job, which nothing may change.

CLI = "Command line misuse (`lark-core`)"

case("cli-show-unknown-id", CLI, "`lark-core show nope`",
     "exit 1, `error: no job 'nope' in any queue`", ("no job 'nope' in any queue",), code=1,
     data=["show", "nope"])
case("cli-retry-unknown-id", CLI, "`lark-core retry nope`",
     "exit 1, `error: no job 'nope' in any queue`", ("no job 'nope'",), code=1, data=["retry", "nope"])
case("cli-remove-unknown-id", CLI, "`lark-core remove nope`",
     "exit 1, `error: no job 'nope' in any queue`", ("no job 'nope'",), code=1,
     data=["remove", "nope"])
case("cli-logs-unknown-id", CLI, "`lark-core logs nope`",
     "exit 1, `error: no job 'nope' in any queue`", ("no job 'nope'",), code=1, data=["logs", "nope"])
case("cli-retry-waiting-job", CLI, "`lark-core retry <id of a waiting job>`",
     "exit 1, `error: job '<id>' in queue 'default' is not failed or completed`",
     ("is not failed or completed",), code=1, data=["retry", "{job}"])
case("cli-promote-waiting-job", CLI, "`lark-core promote <id of a waiting job>`",
     "exit 1, `error: job '<id>' in queue 'default' is not delayed`", ("is not delayed",), code=1,
     data=["promote", "{job}"])
case("cli-payload-bad-json", CLI, "`lark-core dispatch Echo --payload '{bad'`",
     "exit 2, `error: --payload: invalid JSON: Expecting property name enclosed in double quotes "
     "...`", ("--payload: invalid JSON",), code=2, data=["dispatch", "Echo", "--payload", "{bad"])
case("cli-payload-nan", CLI, "`lark-core dispatch Echo --payload NaN`",
     "exit 2, `error: --payload: invalid JSON: NaN is not valid JSON`",
     ("--payload: invalid JSON", "NaN"), code=2, data=["dispatch", "Echo", "--payload", "NaN"])
case("cli-payload-surrogate", CLI, "`--payload '\"\\ud800\"'` (a lone surrogate escape)",
     "exit 2, `error: payload is not JSON-serialisable: it contains '\\ud800', a lone surrogate ...`",
     ("lone surrogate",), code=2, data=["dispatch", "Echo", "--payload", '"\\ud800"'])
case("cli-payload-deep", CLI, "`--payload` nested 100,000 levels deep",
     "exit 2, `error: --payload: invalid JSON: ... recursion ...`", ("--payload",), code=2,
     data=["dispatch", "Echo", "--payload", "[" * 100_000 + "]" * 100_000])
case("cli-delay-negative", CLI, "`lark-core dispatch Echo --delay -5`",
     "exit 2, `Invalid value for '--delay': Input should be greater than or equal to 0`",
     ("--delay",), code=2, data=["dispatch", "Echo", "--delay", "-5"])
case("cli-priority-too-high", CLI, "`lark-core dispatch Echo --priority 99999999`",
     "exit 2, `Invalid value for '--priority': Input should be less than or equal to 2097152`",
     ("--priority",), code=2, data=["dispatch", "Echo", "--priority", "99999999"])
case("cli-priority-word", CLI, "`lark-core dispatch Echo --priority high`",
     "exit 2, `Invalid value for '--priority': ... a valid integer`", ("--priority",), code=2,
     data=["dispatch", "Echo", "--priority", "high"])
case("cli-job-id-space", CLI, "`lark-core dispatch Echo --job-id 'a b'`",
     "exit 2, `error: job_id: expected a non-empty string without spaces, got 'a b'`",
     ("job_id",), code=2, data=["dispatch", "Echo", "--job-id", "a b"])
case("cli-unknown-job-name", CLI, "`lark-core dispatch Nope`",
     "exit 2, `error: no job named 'Nope' in <jobs dir> (pass --queue Q to dispatch it by name "
     "anyway)`", ("no job named 'Nope'", "--queue"), code=2, data=["dispatch", "Nope"])
case("cli-unknown-state", CLI, "`lark-core jobs finished`",
     "exit 2, `Invalid value for 'STATE': 'finished' is not one of 'waiting', ...`",
     ("'finished'", "STATE"), code=2, data=["jobs", "finished"])
case("cli-unknown-queue", CLI, "`lark-core counts --queue nope`",
     "exit 2, `error: queue 'nope' is not configured (jobs.queues: default)`",
     ("queue 'nope' is not configured",), code=2, data=["counts", "--queue", "nope"])
case("cli-pause-unknown-queue", CLI, "`lark-core pause nope`",
     "exit 2, `error: queue 'nope' is not configured (jobs.queues: default)`",
     ("queue 'nope' is not configured",), code=2, data=["pause", "nope"])
case("cli-clean-waiting", CLI, "`lark-core clean default waiting`",
     "exit 2, `Invalid value for 'STATE': 'waiting' is not one of 'completed', 'failed'`",
     ("'waiting'", "STATE"), code=2, data=["clean", "default", "waiting"])
case("cli-clean-negative-grace", CLI, "`lark-core clean default failed --grace -1`",
     "exit 2, `Invalid value for '--grace': Input should be greater than or equal to 0`",
     ("--grace",), code=2, data=["clean", "default", "failed", "--grace", "-1"])
case("cli-retry-nothing", CLI, "`lark-core retry` (no id, no `--all`)",
     "exit 2, `error: give either a JOB_ID or --all`", ("JOB_ID or --all",), code=2, data=["retry"])
case("cli-concurrency-zero", CLI, "`lark-core worker --concurrency 0`",
     "exit 2, `Invalid value for '--concurrency': Input should be greater than or equal to 1`",
     ("--concurrency",), code=2, data=["worker", "--concurrency", "0"])
case("cli-unknown-command", CLI, "`lark-core frobnicate`", "exit 2, `No such command 'frobnicate'`",
     ("No such command",), code=2, data=["frobnicate"])
case("cli-missing-argument", CLI, "`lark-core show` (no JOB_ID)",
     "exit 2, `Missing argument 'JOB_ID'`", ("Missing argument",), code=2, data=["show"])


@pytest.fixture
def cli_project(tmp_path: Path, redis_url: str) -> tuple[str, str]:
    cfg = str(write_project(tmp_path, redis_url, {"jobs.py": JOBS}))
    result = cli("dispatch", "Echo", "--job-id", "existing", "--config", cfg)
    assert result.exit_code == 0, output(result)
    return cfg, "existing"


@pytest.mark.parametrize("c", by_area(CLI))
def test_cli(c: Case, cli_project: tuple[str, str]) -> None:
    cfg, job = cli_project
    before = counts(cfg)
    result = cli(*[a.replace("{job}", job) for a in c.data], "--config", cfg)
    assert result.exit_code == c.code, output(result)
    assert_mentions(result.stderr, c)
    assert "Traceback" not in output(result) and result.stdout == ""
    assert counts(cfg) == before  # nothing else changed


# ============================================================================== the table


def test_the_table_has_at_least_40_cases_with_unique_ids() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)


def render_markdown() -> str:
    lines = [
        "# Bad inputs and what you get",
        "",
        "Each row is a test case in `tests/test_bad_inputs.py` (the test id is the first column).",
        "Exit codes are `lark-core`'s: 0 ok, 1 the operation failed (not found, wrong state, Redis",
        "unreachable), 2 bad usage or config. Messages go to stderr as `error: <message>`; a config",
        "error lists every problem as `<key path>: expected <what>, got <value>` and touches nothing",
        "in Redis. The Redis password is never shown (`redis://:***@host`). When a job is bad, that",
        "one job fails with the reason shown (see `lark-core show <id>`) and the worker goes on: the",
        "jobs beside it still run.",
    ]
    for area in dict.fromkeys(c.area for c in CASES):
        lines += ["", f"## {area}", "", "| case | bad input | what you get |", "|---|---|---|"]
        for c in CASES:
            if c.area == area:
                note = f" *(known bug: {c.xfail})*" if c.xfail else ""
                lines.append(f"| `{c.id}` | {_cell(c.input)} | {_cell(c.result)}{note} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def test_markdown_table_is_in_sync() -> None:
    assert MD_PATH.read_text() == render_markdown(), (
        "tests/bad_inputs.md is out of date: python -m tests.test_bad_inputs > tests/bad_inputs.md")


# ============================================================================== helpers

_runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return _runner.invoke(app, list(args), env=env)


def output(result: Result) -> str:
    return f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def counts(cfg: str) -> dict[str, Any]:
    result = cli("counts", "--json", "--config", cfg)
    assert result.exit_code == 0, output(result)
    return dict(json.loads(result.stdout))


def db_size(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def assert_mentions(message: str, c: Case, skip: tuple[str, ...] = ()) -> None:
    for fragment in c.expect:
        if fragment not in skip:
            assert fragment in message, f"{c.id}: {fragment!r} not in {message!r}"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
