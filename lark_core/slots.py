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
        """Take a fair share of the free slots (0 when none: ``wake`` is called later).

        Queues that found no slot wait in line, in the order they asked: each one ahead
        keeps a slot for itself, so a busy queue whose jobs keep finishing cannot take
        every freed slot before the others get their turn (round-robin).
        """
        line = list(self._hungry)
        ahead = line.index(who) if who in self._hungry else len(line)
        available = self.free - ahead
        if available <= 0:
            self._hungry.setdefault(who, wake)
            return 0
        self._hungry.pop(who, None)
        behind = len(self._hungry) - ahead
        share = math.ceil(available / (behind + 1))
        self.free -= share
        return share

    def give(self, n: int) -> None:
        if n <= 0:
            return
        self.free += n
        for wake in list(self._hungry.values()):
            wake()
