"""Concurrency slots shared by the queues one worker serves, handed out fairly."""

from __future__ import annotations

import math
from collections.abc import Callable


class SlotPool:
    """``size`` slots; a queue that found none is woken when some come back."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._hungry: dict[object, Callable[[], None]] = {}

    @property
    def busy(self) -> int:
        return self.size - self.free

    def take(self, who: object, wake: Callable[[], None]) -> int:
        """Take a fair share of the free slots (0 when none: ``wake`` is called later)."""
        if self.free == 0:
            self._hungry[who] = wake
            return 0
        self._hungry.pop(who, None)
        share = math.ceil(self.free / (len(self._hungry) + 1))
        self.free -= share
        return share

    def give(self, n: int) -> None:
        if n <= 0:
            return
        self.free += n
        hungry, self._hungry = self._hungry, {}
        for wake in hungry.values():
            wake()
