"""Every exception Lark raises derives from :class:`LarkError`."""

from __future__ import annotations


class LarkError(Exception):
    """Root of Lark's exceptions."""


class ConfigError(LarkError):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DiscoveryError(LarkError):
    """A job file could not be imported, or the jobs it defines conflict."""


class RedisUnavailable(LarkError):
    """Redis could not be reached (the message names the masked URL)."""


class PermissionDenied(LarkError):
    """The Redis ACL user may not run what the operation needs (``NOPERM``)."""


class JobNotFound(LarkError):
    """No job with that id exists in the queue(s) searched."""


class AmbiguousJobId(LarkError):
    """A job id was found in more than one queue."""


class JobNotInState(LarkError):
    """The operation needs the job in another state (e.g. retry of an active job)."""


class LockLost(LarkError):
    """The worker no longer holds the job's lock; its result was discarded."""


class SerializationError(LarkError, TypeError):
    """A payload or value could not be encoded as JSON."""


class PayloadTooLarge(LarkError, ValueError):
    """The encoded payload is over ``jobs.max_payload_bytes``."""


class UnknownQueue(LarkError, KeyError):
    """The queue name is not configured."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown queue"


class UnrecoverableError(LarkError):
    """Raise from ``handle`` to fail the job for good, skipping the retries left."""


class JobTimeout(LarkError):
    """A job ran past its timeout."""


class EmbeddedRedisError(LarkError):
    """The project's managed redis-server could not be started or reached."""
