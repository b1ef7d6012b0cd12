"""The engine's Lua scripts: loaded once from ``scripts/*.lua``, called by SHA.

A file ``name-N.lua`` takes N keys; ``_lib.lua`` is prepended to every script.
Calls fall back to ``SCRIPT LOAD`` when Redis answers NOSCRIPT (after a restart),
which is safe because a NOSCRIPT reply means the script did not run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError, ResponseError

Arg = str | int | float


class ScriptCode(IntEnum):
    """Negative replies shared by the scripts (see each script's header)."""

    NO_SUCH_JOB = -1
    WRONG_STATE = -2


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    numkeys: int
    text: str
    sha: str


@dataclass(frozen=True, slots=True)
class Call:
    """One script invocation, for a pipeline."""

    script: LuaScript
    keys: Sequence[str]
    args: Sequence[Arg]

    def argv(self) -> list[Arg]:
        if len(self.keys) != self.script.numkeys:
            raise ValueError(f"{self.script.name} takes {self.script.numkeys} keys, got {len(self.keys)}")
        return [self.script.sha, self.script.numkeys, *self.keys, *self.args]


@cache
def load_scripts() -> dict[str, LuaScript]:
    folder = resources.files("lark_core") / "scripts"
    lib = (folder / "_lib.lua").read_text()
    out: dict[str, LuaScript] = {}
    for entry in folder.iterdir():
        fname = entry.name
        if not fname.endswith(".lua") or fname.startswith("_"):
            continue
        base, _, nkeys = fname[:-4].rpartition("-")
        text = lib + "\n" + entry.read_text()
        sha = hashlib.sha1(text.encode()).hexdigest()
        out[base] = LuaScript(base, int(nkeys), text, sha)
    return out


def script(name: str) -> LuaScript:
    return load_scripts()[name]


def _is_noscript(value: Any) -> bool:
    return isinstance(value, NoScriptError) or (
        isinstance(value, ResponseError) and str(value).startswith("NOSCRIPT")
    )


async def _load_all(client: Any) -> None:
    for s in load_scripts().values():
        await client.script_load(s.text)


async def run(client: Any, call: Call) -> Any:
    """Run one script call on an async client."""
    try:
        return await client.execute_command("EVALSHA", *call.argv())
    except ResponseError as exc:
        if not _is_noscript(exc):
            raise
    await _load_all(client)
    return await client.execute_command("EVALSHA", *call.argv())


def run_sync(client: redis.Redis | redis.RedisCluster, call: Call) -> Any:
    """Run one script call on a sync client."""
    try:
        return client.execute_command("EVALSHA", *call.argv())
    except ResponseError as exc:
        if not _is_noscript(exc):
            raise
    for s in load_scripts().values():
        client.script_load(s.text)
    return client.execute_command("EVALSHA", *call.argv())


async def run_many(client: Any, calls: Sequence[Call | tuple[Any, ...]]) -> list[Any]:
    """Run script calls and plain commands (tuples) in one pipeline, in order.

    Results that are errors are returned as exception objects, except NOSCRIPT,
    which is handled by loading the scripts and re-running just those calls.
    """
    if len(calls) == 1 and isinstance(calls[0], Call):
        # one script call (the idle worker's claim, on the pickup path): no pipeline to build
        try:
            return [await run(client, calls[0])]
        except ResponseError as exc:
            return [exc]
    results = await _pipeline(client, calls)
    missing = [i for i, r in enumerate(results) if _is_noscript(r)]
    if missing:
        await _load_all(client)
        again = await _pipeline(client, [calls[i] for i in missing])
        for i, r in zip(missing, again, strict=True):
            results[i] = r
    return results


async def _pipeline(client: Any, calls: Sequence[Call | tuple[Any, ...]]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for c in calls:
        if isinstance(c, Call):
            pipe.execute_command("EVALSHA", *c.argv())
        else:
            pipe.execute_command(*c)
    return list(await pipe.execute(raise_on_error=False))
