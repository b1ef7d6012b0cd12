"""Lark: a Python job queue on Redis. See DESIGN.md for the contract."""

from lark_core.errors import (
    AmbiguousJobId,
    ConfigError,
    DiscoveryError,
    EmbeddedRedisError,
    JobNotFound,
    JobNotInState,
    JobTimeout,
    LarkError,
    LockLost,
    PayloadTooLarge,
    PermissionDenied,
    RedisUnavailable,
    SerializationError,
    UnknownQueue,
    UnrecoverableError,
)
from lark_core.job import Job
from lark_core.project import Lark, configure_queue, default_project, queues
from lark_core.queue import Queue
from lark_core.record import JobRecord, JobState
from lark_core.registry import WorkerInfo
from lark_core.serve import init_queues, run_worker

__all__ = [
    "AmbiguousJobId", "ConfigError", "DiscoveryError", "EmbeddedRedisError", "Job", "JobNotFound",
    "JobNotInState", "JobRecord", "JobState", "JobTimeout", "Lark", "LarkError", "LockLost",
    "PayloadTooLarge", "PermissionDenied", "Queue", "RedisUnavailable", "SerializationError",
    "UnknownQueue", "UnrecoverableError", "WorkerInfo", "configure_queue", "default_project",
    "init_queues", "list_workers", "queues", "run_worker",
]


async def list_workers() -> list[WorkerInfo]:
    """Every live worker in the default project's Redis (the registry)."""
    return await default_project().list_workers()
