"""The ``Job`` base class users subclass: a handler plus its queue and policy."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from lark_core.errors import LarkError

if TYPE_CHECKING:
    from lark_core.record import JobRecord

log = logging.getLogger("lark.job")


class JobContext(Protocol):
    """What the worker gives a running job (see ``lark_core.worker``)."""

    job_id: str
    attempt: int

    def log(self, level: str, message: str) -> None: ...

    async def update_progress(self, value: Any) -> None: ...

    def update_progress_threadsafe(self, value: Any) -> None: ...


def join_parts(parts: tuple[Any, ...]) -> str:
    """Join like ``print``: strings as they are, anything else as JSON."""
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        else:
            try:
                out.append(json.dumps(p, default=str, ensure_ascii=False))
            except (TypeError, ValueError):
                out.append(repr(p))
    return " ".join(out)


class Job:
    """Subclass and implement ``handle``; register by putting the file in ``jobs.dir``."""

    queue: ClassVar[str] = "default"
    #: registered name; defaults to the class name
    name: ClassVar[str | None] = None
    #: a base class for other jobs, not a job itself
    abstract: ClassVar[bool] = True
    attempts: ClassVar[int | None] = None
    backoff: ClassVar[dict[str, Any] | int | None] = None
    timeout: ClassVar[float | None] = None
    remove_on_complete: ClassVar[Any] = None
    remove_on_fail: ClassVar[Any] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "abstract" not in cls.__dict__:
            cls.abstract = False

    def __init__(self, context: JobContext | None = None) -> None:
        self._context = context
        self.job_id: str | None = context.job_id if context else None
        self.attempt: int = context.attempt if context else 1

    async def handle(self, payload: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def job_name(cls) -> str:
        return cls.name or cls.__name__

    # -- logging -----------------------------------------------------------

    def _log(self, level: str, parts: tuple[Any, ...]) -> None:
        message = join_parts(parts)
        if self._context is not None:
            self._context.log(level, message)
        else:
            log.log(logging.getLevelName(level.upper()), "%s", message)

    def debug(self, *parts: Any) -> None:
        self._log("debug", parts)

    def info(self, *parts: Any) -> None:
        self._log("info", parts)

    def warn(self, *parts: Any) -> None:
        self._log("warning", parts)

    warning = warn

    def error(self, *parts: Any) -> None:
        self._log("error", parts)

    async def update_progress(self, value: Any) -> None:
        """Store progress (any JSON value) on the job; the console shows it live."""
        if self._context is not None:
            await self._context.update_progress(value)

    def set_progress(self, value: Any) -> None:
        """``update_progress`` for a plain ``def handle`` running in a thread."""
        if self._context is not None:
            self._context.update_progress_threadsafe(value)

    # -- dispatch ----------------------------------------------------------

    @classmethod
    async def dispatch(cls, payload: Any = None, **opts: Any) -> JobRecord:
        """Enqueue this job on its queue (options as ``Queue.add``)."""
        from lark_core.project import default_project

        return await default_project().queue(cls.queue).add(cls.job_name(), payload, **opts)

    @classmethod
    def dispatch_sync(cls, payload: Any = None, **opts: Any) -> JobRecord:
        """``dispatch`` from sync code: any thread without a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise LarkError(
                f"{cls.__name__}.dispatch_sync() called from a running event loop; "
                f"use 'await {cls.__name__}.dispatch(...)' there"
            )
        from lark_core.project import default_project

        return default_project().queue(cls.queue).add_sync(cls.job_name(), payload, **opts)
