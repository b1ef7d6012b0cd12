"""Per-job options: validated at dispatch, resolved at the worker.

Resolution order (DESIGN, Decisions): what dispatch/add was given, then the Job
class's attributes, then ``jobs.options`` from the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lark_core.errors import ConfigError
from lark_core.serialization import is_utf8
from lark_core.settings import Backoff, JobOptions, KeepPolicy

#: dispatch keyword -> stored key (camelCase spellings accepted too)
_ALIASES = {
    "attempts": "attempts",
    "backoff": "backoff",
    "remove_on_complete": "remove_on_complete",
    "removeOnComplete": "remove_on_complete",
    "remove_on_fail": "remove_on_fail",
    "removeOnFail": "remove_on_fail",
    "timeout": "timeout",
}
MAX_PRIORITY = 2_097_152


@dataclass(frozen=True, slots=True)
class AddSpec:
    """What the add script needs for one job, validated."""

    job_id: str | None
    delay_ms: int
    priority: int
    stored: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResolvedOptions:
    attempts: int
    backoff: Backoff | None
    remove_on_complete: KeepPolicy | None
    remove_on_fail: KeepPolicy | None
    timeout_s: float | None


def _check(fn: Any, value: Any, path: str) -> Any:
    try:
        return fn(value, path)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _int_option(value: Any, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected an integer {bound}, got {value!r}")
    return int(value)


_NO_OPTIONS = AddSpec(None, 0, 0, {})


def validate_add_options(opts: dict[str, Any]) -> AddSpec:
    """Check dispatch/add keyword options; raise ValueError/TypeError naming the bad one."""
    if not opts:
        return _NO_OPTIONS
    from lark_core import config as cfg

    opts = dict(opts)
    job_id = opts.pop("job_id", None)
    if job_id is None:
        job_id = opts.pop("jobId", None)
    if job_id is not None and (not isinstance(job_id, str) or not job_id or len(job_id) > 200
                               or any(c.isspace() for c in job_id)):
        raise ValueError(f"job_id: expected a non-empty string without spaces, got {job_id!r}")
    if job_id is not None and not is_utf8(job_id):
        raise ValueError(f"job_id: {job_id!r} is not valid UTF-8 (it has a lone surrogate)")
    delay = _int_option(opts.pop("delay", 0) or 0, "delay (ms)", 0)
    priority = _int_option(opts.pop("priority", 0) or 0, "priority", 0, MAX_PRIORITY)
    stored: dict[str, Any] = {}
    for key, value in opts.items():
        name = _ALIASES.get(key)
        if name is None:
            raise TypeError(f"unknown job option {key!r}")
        if value is None:
            continue
        if name == "attempts":
            _check(cfg.parse_attempts, value, "attempts")
        elif name == "backoff":
            _check(cfg.parse_backoff, value, "backoff")
        elif name == "timeout":
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"timeout: expected a positive number of seconds, got {value!r}")
        else:
            _check(cfg.parse_keep_policy, value, name)
        stored[name] = value
    return AddSpec(job_id, delay, priority, stored)


def resolve(stored: dict[str, Any], job_class: type | None, defaults: JobOptions) -> ResolvedOptions:
    """Apply the chain: stored (dispatch) options, class attributes, config defaults."""
    from lark_core import config as cfg

    parsers = {"attempts": cfg.parse_attempts, "backoff": cfg.parse_backoff,
               "remove_on_complete": cfg.parse_keep_policy, "remove_on_fail": cfg.parse_keep_policy,
               "timeout": cfg.parse_timeout}
    fallback: dict[str, Any] = {"attempts": defaults.attempts, "backoff": defaults.backoff,
                                "remove_on_complete": defaults.remove_on_complete,
                                "remove_on_fail": defaults.remove_on_fail, "timeout": defaults.timeout_s}
    values: dict[str, Any] = {}
    for name, parse in parsers.items():
        value = stored[name] if name in stored else getattr(job_class, name, None)
        values[name] = fallback[name] if value is None else _safe(parse, value, fallback[name])
    return ResolvedOptions(values["attempts"], values["backoff"], values["remove_on_complete"],
                           values["remove_on_fail"], values["timeout"])


def _safe(fn: Any, value: Any, fallback: Any) -> Any:
    """A bad option stored by a foreign producer falls back to the default."""
    try:
        return fn(value, "option")
    except ConfigError:
        return fallback


def keep_args(policy: KeepPolicy | None) -> tuple[int, int]:
    """(count, age ms) for the finish script; -1 = no limit."""
    if policy is None:
        return -1, -1
    count = -1 if policy.count is None else policy.count
    age = -1 if policy.age_s is None else int(policy.age_s * 1000)
    return count, age
