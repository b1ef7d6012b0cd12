"""Typed settings that the config loader (``lark_core.config``) produces.

Everything downstream receives these objects explicitly; nothing reads a global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: removeOnComplete / removeOnFail after normalisation:
#: ``None`` keep everything; otherwise keep at most ``count`` jobs (None = no limit)
#: no older than ``age_s`` seconds (None = no limit). ``true`` is ``KeepPolicy(count=0)``.


@dataclass(frozen=True, slots=True)
class KeepPolicy:
    """Which finished jobs to keep; a job breaking either limit is removed."""

    count: int | None = None
    age_s: float | None = None

    @property
    def remove_all(self) -> bool:
        return self.count == 0 or self.age_s == 0


@dataclass(frozen=True, slots=True)
class Backoff:
    type: str = "fixed"  # "fixed" | "exponential"
    delay_ms: int = 0


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Job defaults (``jobs.options``); every field may be overridden per class or dispatch."""

    remove_on_complete: KeepPolicy | None = KeepPolicy(count=0)
    remove_on_fail: KeepPolicy | None = None
    attempts: int = 5
    backoff: Backoff | None = None
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class JobsConfig:
    queues: tuple[str, ...] = ("default",)
    dir: Path | None = None
    options: JobOptions = field(default_factory=JobOptions)
    max_payload_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str | None = None
    host: str | None = None
    port: int | None = None
    db: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TLSConfig | None = None
    cluster: bool = False
    embedded: bool = False


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    concurrency: int = 10
    lock_ms: int = 30000
    stalled_interval_ms: int = 30000
    max_stalls: int = 1
    shutdown_grace_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    jobs: JobsConfig = field(default_factory=JobsConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    #: the folder holding the config file (the project folder); None when built in code
    project_dir: Path | None = None
    #: where the config was loaded from, for messages
    source: str | None = None
    #: warnings collected while loading (unknown keys)
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
