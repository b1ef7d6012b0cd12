"""Messages that travel up the DOM: from widgets to their screen and the app."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from lark_tui.model import JobDetail, JobPage, Overview


@dataclass
class RedisStatus(Message):
    """A poll reached Redis (``error`` is None) or failed to (``error`` says why).

    Floods of these coalesce: only the newest matters.
    """

    error: str | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RedisStatus)


@dataclass
class OverviewLoaded(Message):
    """A fresh overview (queues and registered workers) was read."""

    overview: Overview

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OverviewLoaded)


@dataclass
class QueueChosen(Message):
    """The cursor of the queues table moved to ``queue``."""

    queue: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, QueueChosen)


@dataclass
class WorkerChosen(Message):
    """The cursor of the workers table moved: a local worker ``key`` or a remote one."""

    key: int | None
    label: str
    note: str = ""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, WorkerChosen)


@dataclass
class DataChanged(Message):
    """An action changed Redis; live views should refresh now, not at the next tick."""


@dataclass
class PageLoaded(Message):
    """The jobs table shows a new page (with the counts of every state)."""

    page: JobPage

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PageLoaded)


@dataclass
class JobLoaded(Message):
    """The detail view read its job for the first time or saw its state change."""

    job: JobDetail
