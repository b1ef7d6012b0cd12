"""Helpers shared by the demo jobs (skipped by discovery: the name starts with ``_``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

#: ``examples/`` — every demo path resolves from here, never from the current directory.
EXAMPLES_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = EXAMPLES_DIR / "data"
REPORTS_DIR = EXAMPLES_DIR / "reports"
DEFAULT_OUTBOX = EXAMPLES_DIR / "outbox"


def require_mapping(payload: object, job: str) -> dict[str, object]:
    """The payload as a dict, or a ValueError saying what the job expected."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ValueError(f"{job}: payload must be a JSON object, got {type(payload).__name__}")
    return payload


def env_str(name: str) -> str | None:
    """An environment variable, with unset and blank treated alike."""
    value = os.environ.get(name, "").strip()
    return value or None


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}: expected an integer, got {raw!r}") from None


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and a rename, so a reader (or a
    retried attempt) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def safe_slug(text: str, limit: int = 40) -> str:
    """A file-name-safe slug: ``"North America"`` -> ``"north-america"``."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")[:limit] or "x"
