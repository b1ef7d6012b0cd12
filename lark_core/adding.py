"""Jobs on their way in: validated and encoded once, packed into a few arguments per call
of the add script (``scripts/add-6.lua``).

A batch is checked completely before anything is sent, so a bad item (non-JSON payload,
payload over the limit, bad option) raises with nothing enqueued. Ids are generated here,
before the first send, so a re-sent call only finds its jobs already there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lark_core.ids import new_ids
from lark_core.options import AddSpec, validate_add_options
from lark_core.scripts import Arg
from lark_core.serialization import PayloadEncoder, dumps, is_utf8, loads_own

#: Jobs per add-script call: bounds how long one call holds Redis (a few ms per 1000 jobs).
CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Profile:
    """What jobs of a batch usually share: name and options (the add script gets each once)."""

    name: str
    opts: str  # the stored options, JSON
    priority: int
    delay_ms: int
    stored: dict[str, Any]

    def args(self) -> tuple[str, str, int, int]:
        return self.name, self.opts, self.priority, self.delay_ms

    def options(self) -> dict[str, Any]:
        """A fresh copy of the stored options (for a JobRecord)."""
        return loads_own(self.opts) if self.stored else {}


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"job name: expected a non-empty string, got {name!r}")
    if not is_utf8(name):
        raise ValueError(f"job name: {name!r} is not valid UTF-8 (it has a lone surrogate)")
    return name


class AddBatch:
    """Jobs to add to one queue, in order; ``calls_args`` packs them for the add script."""

    def __init__(self, max_payload_bytes: int) -> None:
        self.ids: list[str] = []
        self.data: list[str] = []
        self.sizes: list[int] = []
        self.profiles: list[Profile] = []
        self._given: dict[int, str] = {}  # position -> the job_id the caller chose
        self._encode = PayloadEncoder(max_payload_bytes)
        self._names: set[str] = set()
        self._specs: dict[tuple[Any, ...], tuple[AddSpec, str]] = {}
        self._shared: dict[tuple[str, int, int, str], Profile] = {}

    def __len__(self) -> int:
        return len(self.data)

    def add(self, name: Any, payload: Any, opts: Mapping[str, Any] | None) -> None:
        """Validate and encode one job (raises ValueError/TypeError/SerializationError)."""
        if not isinstance(name, str) or name not in self._names:
            self._names.add(check_name(name))
        spec, stored = self._spec(opts)
        text, size = self._encode(payload)
        profile = self._profile(name, spec, stored)
        if spec.job_id is not None:
            self._given[len(self.data)] = spec.job_id
        self.data.append(text)
        self.sizes.append(size)
        self.profiles.append(profile)

    def seal(self) -> None:
        """Choose the generated ids (once, before the first send)."""
        fresh = iter(new_ids(len(self.data) - len(self._given)))
        self.ids = [self._given.get(i) or next(fresh) for i in range(len(self.data))]

    def calls_args(self, prefix: str, chunk: int | None = None) -> list[list[Arg]]:
        """The add script's ARGV for each call of up to ``chunk`` (default CHUNK) jobs."""
        chunk = chunk or CHUNK
        return [self._args(prefix, lo, min(lo + chunk, len(self.data)))
                for lo in range(0, len(self.data), chunk)]

    def _args(self, prefix: str, lo: int, hi: int) -> list[Arg]:
        profiles = self.profiles[lo:hi]
        first = profiles[0]
        if all(p is first for p in profiles):
            table, which = [first], ""
        else:
            number: dict[int, int] = {}
            table = []
            for p in profiles:
                if id(p) not in number:
                    number[id(p)] = len(table) + 1
                    table.append(p)
            which = " ".join([str(number[id(p)]) for p in profiles])
        args: list[Arg] = [prefix, hi - lo, " ".join(self.ids[lo:hi]),
                           " ".join(map(str, self.sizes[lo:hi])), "".join(self.data[lo:hi]), which]
        for p in table:
            args.extend(p.args())
        return args

    def _spec(self, opts: Mapping[str, Any] | None) -> tuple[AddSpec, str]:
        """Validated options and the stored ones as JSON; options shared by jobs are checked once."""
        if not opts:
            return _NO_OPTIONS
        if not isinstance(opts, Mapping):
            raise TypeError(f"job options: expected a dict, got {opts!r}")
        try:  # the type is part of the key: 1, 1.0 and True validate differently
            key = tuple((k, type(v), v) for k, v in opts.items())
            known = self._specs.get(key)
        except TypeError:  # an unhashable value (a backoff mapping): no sharing
            return _validated(opts)
        if known is None:
            known = self._specs[key] = _validated(opts)
        return known

    def _profile(self, name: str, spec: AddSpec, stored: str) -> Profile:
        key = (name, spec.priority, spec.delay_ms, stored)
        profile = self._shared.get(key)
        if profile is None:
            profile = self._shared[key] = Profile(name, stored, spec.priority, spec.delay_ms, spec.stored)
        return profile


def _validated(opts: Mapping[str, Any]) -> tuple[AddSpec, str]:
    spec = validate_add_options(dict(opts))
    return spec, dumps(spec.stored, "options") if spec.stored else "{}"


_NO_OPTIONS = _validated({})
