"""Loading and validating ``lark.config.yaml`` into :mod:`lark_core.settings`.

The file is found (``--config``, ``$LARK_CONFIG``, ``./lark.config.yaml``), parsed as
YAML, ``${VAR}`` / ``${VAR:-default}`` references are expanded, and every section is
checked. All problems are collected and raised together as one :class:`ConfigError`
whose lines read ``<key path>: expected <what>, got <value>``; unknown keys only warn.

The Redis password never reaches a message or a ``repr``: a password written in
``redis.url`` is moved into ``RedisConfig.password`` (``repr=False``), so
``RedisConfig.url`` never holds one. Use :func:`redis_url` to get the URL to connect
to, and :func:`mask_url` to show one.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote, unquote, urlsplit

import yaml

from lark_core.errors import ConfigError
from lark_core.settings import (
    Backoff,
    Config,
    JobOptions,
    JobsConfig,
    KeepPolicy,
    RedisConfig,
    TLSConfig,
    WorkerConfig,
)

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULT_REDIS_URL",
    "MAX_PRIORITY",
    "expand_env",
    "find_config_path",
    "load_config",
    "mask_url",
    "parse_attempts",
    "parse_backoff",
    "parse_config",
    "parse_keep_policy",
    "parse_priority",
    "parse_timeout",
    "redis_url",
    "validate_queue_name",
]

CONFIG_FILENAME: Final = "lark.config.yaml"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
DEFAULT_JOBS_DIR: Final = "./jobs"
MAX_PRIORITY: Final = 2_097_152
MAX_QUEUE_NAME: Final = 100

_INIT_HINT = "run `lark-core init` to create one"
_URL_SCHEMES = ("redis", "rediss", "unix")
_URL_EXPECTED = "a redis://, rediss:// or unix:// url"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_INT_TEXT = re.compile(r"[+-]?\d+")
_QUEUE_FORBIDDEN = re.compile(r"[{}:\s]")
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)

T = TypeVar("T")
Convert = Callable[[Any, str], T]


class _Missing(Enum):
    """Marks a key that is absent (or null, or an unset ``${VAR}``)."""

    MISSING = "MISSING"


MISSING: Final = _Missing.MISSING
#: ``redis.tls`` as given: TLSConfig, None (``tls: false``) or MISSING (not given)
_TLSGiven = TLSConfig | _Missing | None
_TLS_EXPECTED = "true, false or a mapping {ca_file, cert_file, key_file, verify}"


# --------------------------------------------------------------------------- finding & loading


def find_config_path(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """The config file to use: ``explicit`` (``--config``), else ``$LARK_CONFIG``, else cwd.

    A directory stands for the ``lark.config.yaml`` inside it. The result is absolute.
    """
    env = os.environ if env is None else env
    if explicit is not None and str(explicit) != "":
        return _require_file(Path(explicit), "given with --config")
    from_env = env.get("LARK_CONFIG", "")
    if from_env:
        return _require_file(Path(from_env), "from $LARK_CONFIG")
    here = Path.cwd() / CONFIG_FILENAME
    if here.is_file():
        return here
    raise ConfigError(
        f"no config file found: looked for {here} ($LARK_CONFIG is not set); "
        f"{_INIT_HINT}, or pass --config PATH"
    )


def _require_file(path: Path, origin: str) -> Path:
    path = path.expanduser().absolute()
    if path.is_file():
        return path
    if path.is_dir() and (path / CONFIG_FILENAME).is_file():
        return path / CONFIG_FILENAME
    looked = f"{path} or {path / CONFIG_FILENAME}" if path.is_dir() else str(path)
    raise ConfigError(f"config file not found: {looked} ({origin}); {_INIT_HINT}")


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Find, read, parse and validate the config file; raise ConfigError listing all problems."""
    env = os.environ if env is None else env
    config_path = find_config_path(path, env)
    data = _load_yaml(_read_text(config_path), config_path)
    return parse_config(data, config_path.parent, str(config_path), env)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read the config file: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in one mapping (the last would win silently)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _flow_env_hint(text: str, mark: Any) -> str:
    """``{url: ${REDIS_URL}}`` is not YAML (the ``{`` of ``${`` starts a mapping): say to quote."""
    lines = text.splitlines()
    line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    before = line.split("${", 1)[0]
    if "${" in line and ("{" in before or "[" in before):
        return ' (inside {...} or [...], quote a value that holds ${VAR}: "${VAR}")'
    return ""


def _load_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc.context}"
                          f"{_flow_env_hint(text, mark)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


# --------------------------------------------------------------------------- env expansion


def expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string inside ``value``.

    A string that is only ``${VAR}``, with VAR unset, makes its key (or list item)
    absent; inside a longer string an unset VAR expands to "". ``:-`` uses the
    default when VAR is unset or empty. Keys are never expanded.
    """
    result = _expand(value, env)
    return None if result is MISSING else result


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _expand_str(value, env)
    if isinstance(value, Mapping):
        pairs = ((key, _expand(item, env)) for key, item in value.items())
        return {key: item for key, item in pairs if item is not MISSING}
    if isinstance(value, list | tuple):
        return [item for item in (_expand(x, env) for x in value) if item is not MISSING]
    return value


def _expand_str(text: str, env: Mapping[str, str]) -> str | _Missing:
    whole = _ENV_REF.fullmatch(text)
    if whole and whole.group(2) is None and whole.group(1) not in env:
        return MISSING
    return _ENV_REF.sub(lambda match: _env_value(match, env), text)


def _env_value(match: re.Match[str], env: Mapping[str, str]) -> str:
    name, default = match.group(1), match.group(2)
    value = env.get(name)
    if default is not None and not value:
        return default
    return value or ""


# --------------------------------------------------------------------------- messages & coercion


def _show(value: Any) -> str:
    """The value as shown in a problem: masked if it looks like a URL, and kept short."""
    if isinstance(value, str) and ("://" in value or "@" in value):
        value = mask_url(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _problem(path: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{path}: expected {expected}, got {_show(value)}")


def _coerce_int(value: Any) -> int | None:
    """An int from an int or an integer string ("6379"); bools and floats are not ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _coerce_number(value: Any) -> float | None:
    """A finite float from an int, a float or a numeric string; bools are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _coerce_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _int_between(low: int, high: int | None, expected: str) -> Convert[int]:
    def convert(value: Any, path: str) -> int:
        number = _coerce_int(value)
        if number is None or number < low or (high is not None and number > high):
            raise _problem(path, expected, value)
        return number

    return convert


def _number_above(low: float, expected: str, *, inclusive: bool = True) -> Convert[float]:
    def convert(value: Any, path: str) -> float:
        number = _coerce_number(value)
        if number is None or number < low or (not inclusive and number == low):
            raise _problem(path, expected, value)
        return number

    return convert


def _bool(value: Any, path: str) -> bool:
    flag = _coerce_bool(value)
    if flag is None:
        raise _problem(path, "true or false", value)
    return flag


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem(path, "a non-empty string", value)
    return value.strip()


def _collect(problems: list[str], value: Any, path: str, convert: Convert[T]) -> T | None:
    """``convert(value)``, or None (with its problems noted) when it fails or value is None."""
    if value is None:
        return None
    try:
        return convert(value, path)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


# --------------------------------------------------------------------------- public value parsers


_positive_int = _int_between(1, None, "a positive integer")
_non_negative_int = _int_between(0, None, "a non-negative integer")


def parse_attempts(value: Any, path: str) -> int:
    """Total tries, first run included: a positive integer."""
    return _positive_int(value, path)


def parse_priority(value: Any, path: str) -> int:
    """An integer from 0 (first) to 2,097,152."""
    return _int_between(0, MAX_PRIORITY, f"an integer from 0 to {MAX_PRIORITY}")(value, path)


def parse_timeout(value: Any, path: str) -> float | None:
    """A job timeout in seconds (a positive number); None means no timeout."""
    if value is None:
        return None
    return _number_above(0, "a positive number of seconds", inclusive=False)(value, path)


_KEEP_EXPECTED = "true, false, a count >= 0 or a mapping {age: seconds, count: N}"


def parse_keep_policy(value: Any, path: str) -> KeepPolicy | None:
    """removeOnComplete / removeOnFail: true, false, N, or ``{age, count}``.

    ``true`` and ``0`` remove every finished job (``KeepPolicy(count=0)``); ``false``
    and None keep them all (None); a KeepPolicy is returned as it is.
    """
    if value is None or isinstance(value, KeepPolicy):
        return value
    if isinstance(value, Mapping):
        return _keep_mapping(value, path)
    flag = _coerce_bool(value)
    if flag is not None:
        return KeepPolicy(count=0) if flag else None
    count = _coerce_int(value)
    if count is None or count < 0:
        raise _problem(path, _KEEP_EXPECTED, value)
    return KeepPolicy(count=count)


def _keep_mapping(value: Mapping[Any, Any], path: str) -> KeepPolicy | None:
    problems = _unknown_keys(value, path, ("age", "count"))
    count = _collect(problems, value.get("count"), f"{path}.count", _non_negative_int)
    age_s = _collect(
        problems, value.get("age"), f"{path}.age", _number_above(0, "a number of seconds >= 0")
    )
    if problems:
        raise ConfigError(problems)
    if count is None and age_s is None:
        return None
    return KeepPolicy(count=count, age_s=age_s)


def _unknown_keys(value: Mapping[Any, Any], path: str, known: tuple[str, ...]) -> list[str]:
    expected = " and/or ".join(known)
    return [f"{path}.{key}: unknown key; expected {expected}" for key in value if key not in known]


_BACKOFF_EXPECTED = "a delay in ms or a mapping {type: fixed|exponential, delay: ms}"
_BACKOFF_TYPES = ("fixed", "exponential")


def parse_backoff(value: Any, path: str) -> Backoff | None:
    """``{type: fixed|exponential, delay: ms}`` or a bare delay in ms (fixed); None -> None."""
    if value is None or isinstance(value, Backoff):
        return value
    if isinstance(value, Mapping):
        return _backoff_mapping(value, path)
    delay = _coerce_int(value)
    if delay is None or delay < 0:
        raise _problem(path, _BACKOFF_EXPECTED, value)
    return Backoff(type="fixed", delay_ms=delay)


def _backoff_mapping(value: Mapping[Any, Any], path: str) -> Backoff:
    problems = _unknown_keys(value, path, ("type", "delay"))
    kind = _collect(problems, value.get("type", "fixed"), f"{path}.type", _backoff_type)
    delay = _collect(problems, value.get("delay"), f"{path}.delay", _non_negative_int)
    if value.get("delay") is None:
        problems.append(f"{path}.delay: missing; expected a delay in milliseconds")
    if problems or kind is None or delay is None:
        raise ConfigError(problems or [f"{path}: expected {_BACKOFF_EXPECTED}"])
    return Backoff(type=kind, delay_ms=delay)


def _backoff_type(value: Any, path: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in _BACKOFF_TYPES:
        raise _problem(path, "fixed or exponential", value)
    return value.strip().lower()


def validate_queue_name(name: str, path: str) -> str:
    """A queue name: non-empty, at most 100 characters, no ``{``, ``}``, ``:`` or whitespace."""
    if not isinstance(name, str):
        raise _problem(path, "a queue name (a string)", name)
    if not name:
        raise _problem(path, "a non-empty queue name", name)
    if len(name) > MAX_QUEUE_NAME:
        raise _problem(path, f"a queue name of at most {MAX_QUEUE_NAME} characters", name)
    if _QUEUE_FORBIDDEN.search(name):
        raise _problem(path, "a queue name without '{', '}', ':' or whitespace", name)
    return name


def _queue_list(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise _problem(path, "a non-empty list of queue names", value)
    problems: list[str] = []
    names: list[str] = []
    for index, item in enumerate(value):
        name = _collect(problems, item, f"{path}[{index}]", validate_queue_name)
        if item is None:
            problems.append(f"{path}[{index}]: expected a queue name (a string), got None")
        elif name in names:
            problems.append(f"{path}[{index}]: duplicate queue name {name!r}")
        elif name is not None:
            names.append(name)
    if problems:
        raise ConfigError(problems)
    return tuple(names)


# --------------------------------------------------------------------------- URLs


def _split_userinfo(url: str) -> tuple[str, str | None, str]:
    """``(prefix, userinfo, rest)`` with url == prefix + userinfo + "@" + rest.

    The userinfo runs to the last "@" before any query, so a password holding an
    unescaped "/" or "@" is still recognised (and masked) as a password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    head_end = _first_index(rest, "?#")
    at = rest.rfind("@", 0, head_end)
    if at < 0:
        return scheme + sep, None, rest
    return scheme + sep, rest[:at], rest[at + 1 :]


def _first_index(text: str, chars: str) -> int:
    found = [text.find(char) for char in chars if char in text]
    return min(found, default=len(text))


def _join_url(prefix: str, userinfo: str | None, rest: str) -> str:
    return f"{prefix}{userinfo}@{rest}" if userinfo else f"{prefix}{rest}"


def mask_url(url: str) -> str:
    """The URL with its password (in userinfo or ``?password=``) replaced by ``***``."""
    prefix, userinfo, rest = _split_userinfo(url)
    if userinfo is not None and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    rest = _QUERY_PASSWORD.sub(r"\1***", rest)
    return f"{prefix}{userinfo}@{rest}" if userinfo is not None else f"{prefix}{rest}"


def _split_password(url: str) -> tuple[str, str | None]:
    """The URL without its password, and the (unquoted) password it held, if any."""
    prefix, userinfo, rest = _split_userinfo(url)
    password: str | None = None
    if userinfo is not None and ":" in userinfo:
        userinfo, _, raw = userinfo.partition(":")
        password = unquote(raw)
    query_password = _QUERY_PASSWORD.search(rest)
    if query_password:
        password = unquote(query_password.group(2)) if password is None else password
        rest = _drop_param(rest, "password")
    return _join_url(prefix, userinfo, rest), password


def _drop_param(rest: str, name: str) -> str:
    pattern = re.compile(rf"([?&]){name}=[^&#]*&?", re.IGNORECASE)
    return re.sub(r"[?&](?=#|$)", "", pattern.sub(r"\1", rest))


def _scheme(url: str | None) -> str:
    if not url or "://" not in url:
        return ""
    return url.partition("://")[0].lower()


def _url_value(value: Any, path: str) -> str:
    if not isinstance(value, str) or _scheme(value.strip()) not in _URL_SCHEMES:
        raise _problem(path, _URL_EXPECTED, value)
    url = value.strip()
    defect = _url_defect(url)
    if defect:
        raise ConfigError(f"{path}: {defect}, got {_show(url)}")
    return url


def _url_defect(url: str) -> str | None:
    _, _, rest = _split_userinfo(url)
    host = rest[: _first_index(rest, "/?#")]
    if _scheme(url) == "unix":
        path = rest[len(host) : _first_index(rest, "?#")]
        if host or not path:
            return "expected an absolute socket path (unix:///path/to/redis.sock)"
        return None
    try:
        port = urlsplit(mask_url(url)).port
    except ValueError:
        port = 0
    if port == 0:
        return "expected a port from 1 to 65535 in the url"
    db = rest[len(host) : _first_index(rest, "?#")].strip("/")
    if db and not db.isdigit():
        return "expected the url path to be a database number"
    return None


def redis_url(cfg: RedisConfig) -> str:
    """The URL to connect to, password included; for embedded Redis, raise ConfigError."""
    if cfg.embedded:
        raise ConfigError(
            "redis.embedded: the managed server has no configured URL; "
            "start it through lark_core's embedded-Redis support instead"
        )
    if cfg.url:
        return _url_with_overrides(cfg.url, cfg)
    return _url_from_parts(cfg)


def _url_with_overrides(url: str, cfg: RedisConfig) -> str:
    prefix, userinfo, rest = _split_userinfo(url)
    scheme = _scheme(url)
    if cfg.tls is not None and scheme == "redis":
        prefix = "rediss://"
    userinfo = _userinfo(userinfo, cfg.username, cfg.password)
    if cfg.db is not None:
        rest = _with_db(rest, scheme, cfg.db)
    return _join_url(prefix, userinfo, rest)


def _userinfo(current: str | None, username: str | None, password: str | None) -> str | None:
    """Userinfo with ``username``/``password`` (when given) in place of the current ones."""
    raw_user, colon, raw_password = (current or "").partition(":")
    user = quote(username, safe="") if username is not None else raw_user
    secret = quote(password, safe="") if password is not None else raw_password
    if password is None and not colon:
        return user or None
    return f"{user}:{secret}"


def _with_db(rest: str, scheme: str, db: int) -> str:
    cut = _first_index(rest, "?#")
    head, tail = rest[:cut], rest[cut:]
    if scheme == "unix":
        tail = _drop_param(tail, "db")
        return f"{head}{tail}{'&' if tail else '?'}db={db}"
    host = head.split("/", 1)[0]
    return f"{host}/{db}{tail}"


def _url_from_parts(cfg: RedisConfig) -> str:
    scheme = "rediss" if cfg.tls is not None else "redis"
    host = cfg.host or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    userinfo = _userinfo(None, cfg.username, cfg.password)
    auth = f"{userinfo}@" if userinfo else ""
    port = 6379 if cfg.port is None else cfg.port
    db = 0 if cfg.db is None else cfg.db
    return f"{scheme}://{auth}{host}:{port}/{db}"


# --------------------------------------------------------------------------- section reader


@dataclass
class _Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Reader:
    """One mapping of the config: typed access by key path, noting problems and unknown keys."""

    def __init__(self, data: Mapping[Any, Any], path: str, report: _Report) -> None:
        self.data = data
        self.path = path
        self.report = report
        self.known: set[str] = set()

    @classmethod
    def of(cls, value: Any, path: str, report: _Report) -> _Reader:
        if value is MISSING or value is None:
            return cls({}, path, report)
        if not isinstance(value, Mapping):
            report.problems.append(f"{path}: expected a mapping, got {_show(value)}")
            return cls({}, path, report)
        return cls(value, path, report)

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, names: str | tuple[str, ...]) -> tuple[str, Any]:
        """(the spelling used, its value); MISSING when absent or null, or spelled twice."""
        names = (names,) if isinstance(names, str) else names
        self.known.update(names)
        given = [name for name in names if self.data.get(name) is not None]
        if len(given) > 1:
            self.report.problems.append(
                f"{self.key_path(given[0])}: also given as {given[1]}; use one spelling"
            )
            return given[0], MISSING
        if not given:
            return names[0], MISSING
        return given[0], self.data[given[0]]

    def take(self, names: str | tuple[str, ...], convert: Convert[T], default: T) -> T:
        key, value = self.raw(names)
        if value is MISSING:
            return default
        try:
            return convert(value, self.key_path(key))
        except ConfigError as exc:
            self.report.problems.extend(exc.problems)
            return default

    def child(self, names: str | tuple[str, ...]) -> _Reader:
        key, value = self.raw(names)
        return _Reader.of(value, self.key_path(key), self.report)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.known:
                self.report.warnings.append(f"{self.key_path(str(key))}: unknown key (ignored)")


# --------------------------------------------------------------------------- sections


def parse_config(
    data: Any,
    project_dir: Path | None,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate an already-parsed config mapping (``env`` defaults to ``os.environ``)."""
    env = os.environ if env is None else env
    project = Path(project_dir).absolute() if project_dir is not None else None
    report = _Report()
    root = _root_reader(expand_env(data, env), source, report)
    jobs = _parse_jobs(root.child("jobs"), project)
    redis = _parse_redis(root.child("redis"), project)
    worker = _parse_worker(root.child("worker"))
    root.finish()
    if report.problems:
        raise ConfigError(report.problems)
    report.warnings.extend(_unset_redis_vars(data, env))
    return Config(
        jobs=jobs,
        redis=redis,
        worker=worker,
        project_dir=project,
        source=source,
        warnings=tuple(report.warnings),
    )


def _unset_redis_vars(data: Any, env: Mapping[str, str]) -> list[str]:
    """A ``redis.url: ${REDIS_URL}`` whose variable is unset leaves the key out, and with
    nothing else set Lark connects to the default server: say so, naming the variable, so
    a forgotten export is not a silent switch to a shared local Redis."""
    section = data.get("redis") if isinstance(data, Mapping) else None
    if not isinstance(section, Mapping):
        return []
    given = expand_env(section, env) or {}
    if any(given.get(key) for key in ("url", "host", "embedded")):
        return []
    out = []
    for key in ("url", "host"):
        whole = _ENV_REF.fullmatch(str(section.get(key, "")))
        if whole and whole.group(2) is None and whole.group(1) not in env:
            out.append(f"redis.{key}: ${{{whole.group(1)}}} is not set, so Lark connects to the "
                       f"default {DEFAULT_REDIS_URL}")
    return out


def _root_reader(data: Any, source: str, report: _Report) -> _Reader:
    if data is not None and not isinstance(data, Mapping):
        report.problems.append(
            f"{source}: expected a mapping with jobs, redis and worker sections, got {_show(data)}"
        )
        data = None
    return _Reader.of(data, "", report)


def _resolve(path_text: str, project_dir: Path | None) -> Path:
    path = Path(path_text).expanduser()
    if project_dir is not None and not path.is_absolute():
        path = project_dir / path
    return Path(os.path.normpath(path))


def _path_in(project_dir: Path | None) -> Convert[Path]:
    def convert(value: Any, path: str) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise _problem(path, "a path (a non-empty string)", value)
        return _resolve(value.strip(), project_dir)

    return convert


def _parse_jobs(sec: _Reader, project_dir: Path | None) -> JobsConfig:
    jobs = JobsConfig(
        queues=sec.take("queues", _queue_list, ("default",)),
        dir=sec.take("dir", _path_in(project_dir), _resolve(DEFAULT_JOBS_DIR, project_dir)),
        options=_parse_job_options(sec.child("options")),
        max_payload_bytes=sec.take(
            ("maxPayloadBytes", "max_payload_bytes"), _positive_int, 1024 * 1024
        ),
    )
    sec.finish()
    return jobs


def _parse_job_options(sec: _Reader) -> JobOptions:
    base = JobOptions()
    options = JobOptions(
        remove_on_complete=sec.take(
            ("removeOnComplete", "remove_on_complete"), parse_keep_policy, base.remove_on_complete
        ),
        remove_on_fail=sec.take(
            ("removeOnFail", "remove_on_fail"), parse_keep_policy, base.remove_on_fail
        ),
        attempts=sec.take("attempts", parse_attempts, base.attempts),
        backoff=sec.take("backoff", parse_backoff, base.backoff),
        timeout_s=sec.take("timeout", parse_timeout, base.timeout_s),
    )
    sec.finish()
    return options


def _parse_worker(sec: _Reader) -> WorkerConfig:
    base = WorkerConfig()
    at_least_100 = _int_between(100, None, "an integer >= 100 (milliseconds)")
    worker = WorkerConfig(
        concurrency=sec.take("concurrency", _positive_int, base.concurrency),
        lock_ms=sec.take(("lock_ms", "lockMs"), at_least_100, base.lock_ms),
        stalled_interval_ms=sec.take(
            ("stalled_interval_ms", "stalledIntervalMs"), at_least_100, base.stalled_interval_ms
        ),
        max_stalls=sec.take(("max_stalls", "maxStalls"), _non_negative_int, base.max_stalls),
        shutdown_grace_s=sec.take(
            ("shutdown_grace_s", "shutdownGraceS"),
            _number_above(0, "a number of seconds >= 0"),
            base.shutdown_grace_s,
        ),
    )
    sec.finish()
    return worker


# --------------------------------------------------------------------------- redis section


def _credential(value: Any, path: str) -> str | None:
    """A username: a string (an int is taken as its digits); "" means none."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _problem(path, "a string", value)
    return value or None


def _secret(value: Any, path: str) -> str | None:
    """A password, checked like a username but never shown."""
    try:
        return _credential(value, path)
    except ConfigError:
        raise ConfigError(f"{path}: expected a string, got a {type(value).__name__}") from None


def _parse_redis(sec: _Reader, project_dir: Path | None) -> RedisConfig:
    given = RedisConfig(
        url=sec.take("url", _url_value, None),
        host=sec.take("host", _text, None),
        port=sec.take("port", _int_between(1, 65535, "a port from 1 to 65535"), None),
        db=sec.take("db", _non_negative_int, None),
        username=sec.take("username", _credential, None),
        password=sec.take("password", _secret, None),
        cluster=sec.take("cluster", _bool, False),
        embedded=sec.take("embedded", _bool, False),
    )
    tls = _take_tls(sec, project_dir)
    sec.finish()
    sec.report.problems.extend(_embedded_conflicts(given, tls) + _url_conflicts(given, tls))
    return _redis_with_defaults(given, tls)


def _take_tls(sec: _Reader, project_dir: Path | None) -> _TLSGiven:
    """A TLSConfig, None for ``tls: false``, MISSING when not given (or invalid)."""
    key, value = sec.raw("tls")
    if isinstance(value, Mapping):
        return _parse_tls(_Reader(value, sec.key_path(key), sec.report), project_dir)
    absent: _TLSGiven = MISSING
    return sec.take("tls", _tls_flag, absent)


def _tls_flag(value: Any, path: str) -> TLSConfig | None:
    flag = _coerce_bool(value)
    if flag is None:
        raise _problem(path, _TLS_EXPECTED, value)
    return TLSConfig() if flag else None


def _file_path(project_dir: Path | None) -> Convert[str]:
    to_path = _path_in(project_dir)
    return lambda value, path: str(to_path(value, path))


def _parse_tls(sec: _Reader, project_dir: Path | None) -> TLSConfig:
    file_path = _file_path(project_dir)
    tls = TLSConfig(
        ca_file=sec.take(("ca_file", "caFile"), file_path, None),
        cert_file=sec.take(("cert_file", "certFile"), file_path, None),
        key_file=sec.take(("key_file", "keyFile"), file_path, None),
        verify=sec.take("verify", _bool, True),
    )
    sec.finish()
    return tls


def _embedded_conflicts(cfg: RedisConfig, tls: _TLSGiven) -> list[str]:
    if not cfg.embedded:
        return []
    problems = []
    if cfg.url or cfg.host:
        problems.append("redis.embedded: cannot be combined with redis.url/host")
    if cfg.cluster:
        problems.append("redis.cluster: cannot be combined with redis.embedded")
    if isinstance(tls, TLSConfig):
        problems.append("redis.tls: cannot be combined with redis.embedded")
    return problems


def _url_conflicts(cfg: RedisConfig, tls: _TLSGiven) -> list[str]:
    if not cfg.url:
        return []
    problems = []
    if cfg.host or cfg.port is not None:
        problems.append("redis.url: cannot be combined with redis.host/port; give one or the other")
    scheme = _scheme(cfg.url)
    if scheme == "unix" and isinstance(tls, TLSConfig):
        problems.append("redis.tls: cannot be used with a unix:// url")
    if scheme == "rediss" and tls is None:
        problems.append("redis.tls: false contradicts the rediss:// url")
    return problems


def _redis_with_defaults(cfg: RedisConfig, tls: _TLSGiven) -> RedisConfig:
    url, url_password = _split_password(cfg.url) if cfg.url else (None, None)
    if tls is MISSING:
        tls = TLSConfig() if _scheme(url) == "rediss" else None
    host = cfg.host
    if url is None and host is None and not cfg.embedded:
        if cfg.port is None:
            url = DEFAULT_REDIS_URL
        else:
            host = "127.0.0.1"
    password = cfg.password if cfg.password is not None else url_password
    return replace(cfg, url=url, host=host, password=password, tls=tls)
