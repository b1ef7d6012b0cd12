"""JSON encoding of payloads, return values and progress (never pickle)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lark_core.errors import PayloadTooLarge, SerializationError

_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)
_decoder = json.JSONDecoder()


def _reusable_encode() -> Callable[[Any], str]:
    """``_encoder.encode`` without building a C encoder per call (which ``encode`` does):
    one is built here and reused, its circular-reference markers cleared after a failure."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _encoder.encode
    markers: dict[int, Any] = {}
    chunks = make(markers, _encoder.default, json.encoder.encode_basestring, None,
                  _encoder.key_separator, _encoder.item_separator, False, False, False)

    def encode(value: Any) -> str:
        try:
            return "".join(chunks(value, 0))
        except BaseException:
            markers.clear()
            raise

    return encode


def dumps(value: Any, what: str = "value", encode: Callable[[Any], str] = _encoder.encode) -> str:
    """Encode ``value`` as compact JSON; NaN/Infinity, non-JSON types and text that is not
    valid UTF-8 (a lone surrogate such as ``"\\ud800"``) raise SerializationError."""
    try:
        text = encode(value)
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
    return PayloadEncoder(max_bytes)(payload)[0]


class PayloadEncoder:
    """Encodes the payloads of a batch of jobs: ``(JSON text, its size in UTF-8 bytes)``.

    ``None`` is ``{}``; a non-JSON value raises SerializationError, one over ``max_bytes``
    PayloadTooLarge. One C encoder serves the whole batch.
    """

    __slots__ = ("_encode", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._encode = _reusable_encode()

    def __call__(self, payload: Any) -> tuple[str, int]:
        text = dumps({} if payload is None else payload, "payload", self._encode)
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if size > self.max_bytes:
            raise PayloadTooLarge(
                f"payload is {size} bytes encoded, over jobs.max_payload_bytes ({self.max_bytes})"
            )
        return text, size


def loads(text: str | None, default: Any = None) -> Any:
    """Decode JSON written by Lark; ``None`` or empty gives ``default``."""
    if text is None or text == "":
        return default
    return json.loads(text)


def loads_own(text: str) -> Any:
    """Decode JSON that ``dumps`` wrote (compact, nothing around it): a fresh copy of the value."""
    return _decoder.raw_decode(text)[0]
