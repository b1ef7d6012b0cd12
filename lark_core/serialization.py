"""JSON encoding of payloads, return values and progress (never pickle)."""

from __future__ import annotations

import json
from typing import Any

from lark_core.errors import PayloadTooLarge, SerializationError

_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any, what: str = "value") -> str:
    """Encode ``value`` as compact JSON; NaN/Infinity, non-JSON types and text that is not
    valid UTF-8 (a lone surrogate such as ``"\\ud800"``) raise SerializationError."""
    try:
        text = _encoder.encode(value)
        if not text.isascii():  # O(1) for ASCII; Redis gets UTF-8, which a lone surrogate is not
            text.encode("utf-8")
        return text
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        raise SerializationError(f"{what} is not JSON-serialisable: it contains {bad!r}, a lone "
                                 "surrogate, which is not valid UTF-8") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"{what} is not JSON-serialisable: {exc}") from None


def is_utf8(text: str) -> bool:
    """Whether Redis can be sent ``text`` as UTF-8 (False for a lone surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_safe(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (lone surrogates) written as ``\\udXXX``."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def encode_payload(payload: Any, max_bytes: int) -> str:
    text = dumps({} if payload is None else payload, "payload")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise PayloadTooLarge(
            f"payload is {size} bytes encoded, over jobs.max_payload_bytes ({max_bytes})"
        )
    return text


def loads(text: str | None, default: Any = None) -> Any:
    """Decode JSON written by Lark; ``None`` or empty gives ``default``."""
    if text is None or text == "":
        return default
    return json.loads(text)
