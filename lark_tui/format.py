"""Pure formatting helpers: numbers, durations, sizes and sparklines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

BARS = "▁▂▃▄▅▆▇█"


def count(n: int) -> str:
    """A compact count: 999, 1.2k, 34k, 1.0M."""
    if n < 1000:
        return str(n)
    for div, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1000, "k")):
        if n >= div:
            value = n / div
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return str(n)  # pragma: no cover


def duration(seconds: float) -> str:
    """A short duration: 5s, 3m12s, 4h05m, 2d03h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def age(then_ms: int | None, now_s: float) -> str:
    """How long ago ``then_ms`` (epoch ms) was, or ``-``."""
    if not then_ms:
        return "-"
    return duration(now_s - then_ms / 1000)


def stamp(ms: int | None, now_s: float) -> str:
    """An absolute UTC time with its age: ``2025-01-02 03:04:05Z (5m ago)``."""
    if not ms:
        return "-"
    when = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    delta = now_s - ms / 1000
    rel = f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"
    return f"{when} ({rel})"


def size(n: int | None) -> str:
    """Bytes as 12K / 34M / 1.2G."""
    if n is None:
        return "-"
    for div, suffix in ((1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")):
        if n >= div:
            value = n / div
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return f"{n}B"


def sparkline(values: Sequence[int], width: int) -> str:
    """The last ``width`` values as block characters, scaled to their maximum."""
    tail = list(values)[-width:] if width > 0 else []
    tail = [0] * (width - len(tail)) + tail
    top = max(tail, default=0)
    if top <= 0:
        return BARS[0] * width
    last = len(BARS) - 1
    return "".join(BARS[min(last, round(v / top * last))] for v in tail)


def pretty_json(value: Any) -> str:
    """Indented JSON for display; falls back to ``repr`` for anything odd."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    except (TypeError, ValueError):
        return repr(value)


def one_line(text: str | None, limit: int = 200) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
