"""lark_core.config: finding, parsing, env expansion and validation of lark.config.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lark_core.config import (
    DEFAULT_REDIS_URL,
    expand_env,
    find_config_path,
    load_config,
    mask_url,
    parse_attempts,
    parse_backoff,
    parse_config,
    parse_keep_policy,
    parse_priority,
    parse_timeout,
    redis_url,
    validate_queue_name,
)
from lark_core.errors import ConfigError
from lark_core.settings import Backoff, Config, KeepPolicy, TLSConfig

SECRET = "s3cr3t-Pa55"

DEMO = """\
jobs:
  queues: [default, high-priority, emails, reports]
  dir: ./examples/jobs
  options:
    removeOnComplete: {count: 1000}
    removeOnFail: false
    attempts: 5
    backoff: {type: exponential, delay: 1000}
redis:
  url: ${REDIS_URL:-redis://127.0.0.1:6379/0}
worker:
  concurrency: 10
  lock_ms: 30000
  stalled_interval_ms: 30000
  max_stalls: 1
  shutdown_grace_s: 30
"""


def parse(data: Any, env: dict[str, str] | None = None, project: Path | None = None) -> Config:
    return parse_config(data, project, env=env or {})


def problems_of(data: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data, env)
    return info.value.problems


def write(folder: Path, text: str, name: str = "lark.config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- find_config_path


def test_find_prefers_explicit_over_env_and_cwd(tmp_path: Path, monkeypatch: Any) -> None:
    explicit = write(tmp_path / "a", "{}")
    from_env = write(tmp_path / "b", "{}")
    write(tmp_path / "c", "{}")
    monkeypatch.chdir(tmp_path / "c")
    assert find_config_path(explicit, {"LARK_CONFIG": str(from_env)}) == explicit


def test_find_uses_env_then_cwd(tmp_path: Path, monkeypatch: Any) -> None:
    from_env = write(tmp_path / "b", "{}")
    here = write(tmp_path / "c", "{}")
    monkeypatch.chdir(tmp_path / "c")
    assert find_config_path(None, {"LARK_CONFIG": str(from_env)}) == from_env
    assert find_config_path(None, {}) == here
    assert find_config_path(None, {"LARK_CONFIG": ""}) == here


def test_find_accepts_a_project_folder(tmp_path: Path) -> None:
    path = write(tmp_path / "proj", "{}")
    assert find_config_path(tmp_path / "proj", {}) == path


def test_find_missing_names_paths_and_hints_init(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        find_config_path(None, {})
    assert str(tmp_path / "lark.config.yaml") in str(info.value)
    assert "lark-core init" in str(info.value)
    with pytest.raises(ConfigError, match=r"nope.yaml.*--config.*lark-core init"):
        find_config_path(tmp_path / "nope.yaml", {})
    with pytest.raises(ConfigError, match=r"gone.yaml.*\$LARK_CONFIG"):
        find_config_path(None, {"LARK_CONFIG": str(tmp_path / "gone.yaml")})


def test_explicit_missing_does_not_fall_back(tmp_path: Path, monkeypatch: Any) -> None:
    write(tmp_path, "{}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError):
        find_config_path(tmp_path / "other.yaml", {})


# --------------------------------------------------------------------------- load_config


def test_load_demo_config(tmp_path: Path) -> None:
    path = write(tmp_path / "proj", DEMO)
    cfg = load_config(path, {})
    assert cfg.jobs.queues == ("default", "high-priority", "emails", "reports")
    assert cfg.jobs.dir == tmp_path / "proj" / "examples" / "jobs"
    assert cfg.jobs.options.remove_on_complete == KeepPolicy(count=1000)
    assert cfg.jobs.options.remove_on_fail is None
    assert cfg.jobs.options.backoff == Backoff(type="exponential", delay_ms=1000)
    assert cfg.redis.url == DEFAULT_REDIS_URL
    assert cfg.worker.shutdown_grace_s == 30.0
    assert cfg.project_dir == tmp_path / "proj"
    assert cfg.source == str(path)
    assert cfg.warnings == ()


def test_load_uses_env_for_lookup_and_expansion(tmp_path: Path) -> None:
    path = write(tmp_path, DEMO)
    env = {"LARK_CONFIG": str(path), "REDIS_URL": "redis://cache:6380/3"}
    assert load_config(None, env).redis.url == "redis://cache:6380/3"


def test_relative_project_dir_is_made_absolute(tmp_path: Path, monkeypatch: Any) -> None:
    write(tmp_path / "proj", "jobs: {dir: jobs}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config("proj/lark.config.yaml", {})
    assert cfg.project_dir == tmp_path / "proj"
    assert cfg.jobs.dir == tmp_path / "proj" / "jobs"


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "jobs:\n  queues: [a, b\nredis: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert "invalid YAML" in message
    assert message.startswith(f"{path}:3:")


def test_an_unquoted_variable_inside_braces_is_told_to_be_quoted(tmp_path: Path) -> None:
    path = write(tmp_path, "jobs:\n  queues: [default]\nredis: {url: ${REDIS_URL}}\n")
    with pytest.raises(ConfigError, match=r':3:\d+: invalid YAML: .*quote a value that holds '
                                          r'\$\{VAR\}: "\$\{VAR\}"'):
        load_config(path, {})
    fixed = write(tmp_path, 'jobs:\n  queues: [default]\nredis: {url: "${REDIS_URL}"}\n')
    assert load_config(fixed, {"REDIS_URL": "redis://10.0.0.5:6379/0"}).redis.url == \
        "redis://10.0.0.5:6379/0"


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "redis:\n  url: redis://a:1/0\nredis:\n  url: redis://b:2/0\n")
    with pytest.raises(ConfigError, match=r":3:1: invalid YAML: duplicate key 'redis'"):
        load_config(path, {})


def test_yaml_merge_keys_may_override(tmp_path: Path) -> None:
    text = "base: &b {concurrency: 2, lock_ms: 5000}\nworker:\n  <<: *b\n  concurrency: 4\n"
    cfg = load_config(write(tmp_path, text), {})
    assert (cfg.worker.concurrency, cfg.worker.lock_ms) == (4, 5000)
    assert cfg.warnings == ("base: unknown key (ignored)",)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""), {})
    assert cfg.jobs.queues == ("default",)
    assert cfg.jobs.dir == tmp_path / "jobs"
    assert cfg.jobs.options.remove_on_complete == KeepPolicy(count=0)
    assert cfg.jobs.options.attempts == 5
    assert cfg.jobs.max_payload_bytes == 1024 * 1024
    assert redis_url(cfg.redis) == DEFAULT_REDIS_URL


def test_unknown_keys_warn(tmp_path: Path) -> None:
    text = "jobs:\n  optionz: {}\n  options: {atempts: 3}\nqueue: x\nredis: {tls: {cafile: x}}\n"
    cfg = load_config(write(tmp_path, text), {})
    assert set(cfg.warnings) == {
        "jobs.optionz: unknown key (ignored)",
        "jobs.options.atempts: unknown key (ignored)",
        "queue: unknown key (ignored)",
        "redis.tls.cafile: unknown key (ignored)",
    }


def test_top_level_must_be_a_mapping() -> None:
    assert problems_of(["jobs"])[0].startswith("<config>: expected a mapping")
    assert problems_of({"jobs": [1]}) == ["jobs: expected a mapping, got [1]"]


# --------------------------------------------------------------------------- env expansion


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${H}", "cache"),
        ("${H:-other}", "cache"),
        ("${NOPE:-other}", "other"),
        ("${EMPTY:-other}", "other"),
        ("${EMPTY}", ""),
        ("redis://${H}:${NOPE}/0", "redis://cache:/0"),
        ("redis://${NOPE:-localhost}:${PORT:-6379}", "redis://localhost:6380"),
        ("no refs $H {H} ${", "no refs $H {H} ${"),
    ],
)
def test_expand_env_forms(text: str, expected: str) -> None:
    assert expand_env(text, {"H": "cache", "EMPTY": "", "PORT": "6380"}) == expected


def test_expand_env_recurses_and_drops_unset_whole_references() -> None:
    data = {"a": {"b": ["${X}", "${NOPE}", 3]}, "c": "${NOPE}", "d": True, "${X}": 1}
    assert expand_env(data, {"X": "x"}) == {"a": {"b": ["x", 3]}, "d": True, "${X}": 1}
    assert expand_env("${NOPE}", {}) is None


def test_unset_reference_leaves_optional_key_absent() -> None:
    data = {"redis": {"host": "${REDIS_HOST:-localhost}", "port": "${REDIS_PORT}",
                      "password": "${REDIS_PASSWORD}", "tls": "${REDIS_TLS}"}}
    cfg = parse(data)
    assert (cfg.redis.host, cfg.redis.port, cfg.redis.password, cfg.redis.tls) == (
        "localhost", None, None, None)
    assert redis_url(cfg.redis) == "redis://localhost:6379/0"


def test_env_strings_are_coerced_to_ints_and_bools() -> None:
    env = {"REDIS_PORT": "6380", "REDIS_TLS": "true", "CLUSTER": "False", "ATTEMPTS": "7"}
    data = {"redis": {"host": "h", "port": "${REDIS_PORT}", "tls": "${REDIS_TLS}",
                      "cluster": "${CLUSTER}"},
            "jobs": {"options": {"attempts": "${ATTEMPTS}", "removeOnComplete": "${RM:-false}"}}}
    cfg = parse(data, env)
    assert cfg.redis.port == 6380
    assert cfg.redis.tls == TLSConfig()
    assert cfg.redis.cluster is False
    assert cfg.jobs.options.attempts == 7
    assert cfg.jobs.options.remove_on_complete is None
    assert redis_url(cfg.redis) == "rediss://h:6380/0"


def test_non_numeric_string_is_an_error() -> None:
    data = {"jobs": {"options": {"attempts": "${A}"}}}
    assert problems_of(data, {"A": "five"}) == [
        "jobs.options.attempts: expected a positive integer, got 'five'"
    ]


# --------------------------------------------------------------------------- value parsers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, KeepPolicy(count=0)),
        (False, None),
        (None, None),
        (0, KeepPolicy(count=0)),
        (100, KeepPolicy(count=100)),
        ("100", KeepPolicy(count=100)),
        ("true", KeepPolicy(count=0)),
        ({"count": 5}, KeepPolicy(count=5)),
        ({"age": 3600}, KeepPolicy(age_s=3600.0)),
        ({"age": 1.5, "count": 0}, KeepPolicy(count=0, age_s=1.5)),
        ({}, None),
        (KeepPolicy(count=3), KeepPolicy(count=3)),
    ],
)
def test_keep_policy_forms(value: Any, expected: KeepPolicy | None) -> None:
    assert parse_keep_policy(value, "x") == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (-1, "x: expected true, false, a count >= 0"),
        ("lots", "x: expected true, false, a count >= 0"),
        (1.5, "x: expected true, false, a count >= 0"),
        ({"count": -2}, "x.count: expected a non-negative integer, got -2"),
        ({"count": 2.5}, "x.count: expected a non-negative integer, got 2.5"),
        ({"age": "old"}, "x.age: expected a number of seconds >= 0, got 'old'"),
        ({"cout": 3}, "x.cout: unknown key; expected age and/or count"),
    ],
)
def test_keep_policy_errors(value: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_keep_policy(value, "x")
    assert info.value.problems[0].startswith(problem)


def test_backoff_forms_and_errors() -> None:
    assert parse_backoff(None, "b") is None
    assert parse_backoff(500, "b") == Backoff(type="fixed", delay_ms=500)
    assert parse_backoff({"delay": 10}, "b") == Backoff(type="fixed", delay_ms=10)
    assert parse_backoff({"type": "exponential", "delay": "1000"}, "b") == Backoff(
        "exponential", 1000)
    with pytest.raises(ConfigError) as info:
        parse_backoff({"type": "linear", "delai": 5}, "b")
    assert info.value.problems == [
        "b.delai: unknown key; expected type and/or delay",
        "b.type: expected fixed or exponential, got 'linear'",
        "b.delay: missing; expected a delay in milliseconds",
    ]
    for bad in (True, -5, "soon", [1000]):
        with pytest.raises(ConfigError, match=r"^b: expected a delay in ms"):
            parse_backoff(bad, "b")


def test_attempts_priority_and_timeout() -> None:
    assert parse_attempts(3, "a") == 3
    assert parse_attempts("2", "a") == 2
    for bad in (0, -1, True, 2.5, "five", None):
        with pytest.raises(ConfigError, match=r"^a: expected a positive integer"):
            parse_attempts(bad, "a")
    assert parse_priority(0, "p") == 0
    assert parse_priority(2_097_152, "p") == 2_097_152
    for bad in (-1, 2_097_153, False):
        with pytest.raises(ConfigError, match=r"^p: expected an integer from 0 to 2097152"):
            parse_priority(bad, "p")
    assert parse_timeout(None, "t") is None
    assert parse_timeout("2.5", "t") == 2.5
    for bad in (0, -1, float("nan"), True):
        with pytest.raises(ConfigError, match=r"^t: expected a positive number of seconds"):
            parse_timeout(bad, "t")


@pytest.mark.parametrize("name", ["default", "high-priority", "emails.v2", "Q_1", "x" * 100])
def test_valid_queue_names(name: str) -> None:
    assert validate_queue_name(name, "q") == name


@pytest.mark.parametrize("name", ["", "a{b", "a}b", "a:b", "a b", "tab\t", "x" * 101, 5, None])
def test_invalid_queue_names(name: Any) -> None:
    with pytest.raises(ConfigError, match=r"^q: expected"):
        validate_queue_name(name, "q")


def test_queue_list_rules() -> None:
    assert parse({"jobs": {}}).jobs.queues == ("default",)
    assert problems_of({"jobs": {"queues": []}}) == [
        "jobs.queues: expected a non-empty list of queue names, got []"
    ]
    assert problems_of({"jobs": {"queues": "emails"}})[0].startswith("jobs.queues: expected")
    assert problems_of({"jobs": {"queues": ["a", "b", "a", "c d"]}}) == [
        "jobs.queues[2]: duplicate queue name 'a'",
        "jobs.queues[3]: expected a queue name without '{', '}', ':' or whitespace, got 'c d'",
    ]


# --------------------------------------------------------------------------- jobs section


@pytest.mark.parametrize(
    "options",
    [
        {"removeOnComplete": 10, "removeOnFail": True, "maxPayloadBytes": 2048},
        {"remove_on_complete": 10, "remove_on_fail": True, "max_payload_bytes": 2048},
    ],
)
def test_camel_and_snake_aliases(options: dict[str, Any]) -> None:
    payload_key = next(key for key in options if key.lower().startswith("max"))
    jobs = {"options": {k: v for k, v in options.items() if k != payload_key},
            payload_key: options[payload_key]}
    cfg = parse({"jobs": jobs})
    assert cfg.jobs.options.remove_on_complete == KeepPolicy(count=10)
    assert cfg.jobs.options.remove_on_fail == KeepPolicy(count=0)
    assert cfg.jobs.max_payload_bytes == 2048
    assert cfg.warnings == ()


def test_both_spellings_at_once_is_an_error() -> None:
    data = {"jobs": {"options": {"removeOnFail": 1, "remove_on_fail": 2}},
            "worker": {"lock_ms": 1000, "lockMs": 2000}}
    assert problems_of(data) == [
        "jobs.options.removeOnFail: also given as remove_on_fail; use one spelling",
        "worker.lock_ms: also given as lockMs; use one spelling",
    ]


def test_job_option_values() -> None:
    cfg = parse({"jobs": {"options": {"timeout": 30, "backoff": 250, "attempts": 1}}})
    assert cfg.jobs.options.timeout_s == 30.0
    assert cfg.jobs.options.backoff == Backoff("fixed", 250)
    assert cfg.jobs.options.attempts == 1
    assert problems_of({"jobs": {"options": {"attempts": True}}}) == [
        "jobs.options.attempts: expected a positive integer, got True"
    ]
    assert problems_of({"jobs": {"maxPayloadBytes": 0}}) == [
        "jobs.maxPayloadBytes: expected a positive integer, got 0"
    ]


def test_jobs_dir_resolution(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    assert parse({"jobs": {"dir": "../shared/jobs"}}, project=project).jobs.dir == (
        tmp_path / "shared" / "jobs")
    assert parse({"jobs": {"dir": str(tmp_path / "abs")}}, project=project).jobs.dir == (
        tmp_path / "abs")
    assert parse({}, project=project).jobs.dir == project / "jobs"
    assert parse({"jobs": {"dir": "./tasks"}}).jobs.dir == Path("tasks")
    assert parse({"jobs": {"dir": str(tmp_path / "missing")}}).jobs.dir == tmp_path / "missing"
    assert problems_of({"jobs": {"dir": 5}}) == [
        "jobs.dir: expected a path (a non-empty string), got 5"
    ]


# --------------------------------------------------------------------------- redis section


def test_redis_default_and_parts() -> None:
    assert parse({}).redis.url == DEFAULT_REDIS_URL
    assert parse({"redis": {}}).redis.tls is None
    cfg = parse({"redis": {"host": "cache", "port": 6380, "db": 2, "username": "app",
                           "password": "p@ss/w:rd"}})
    assert cfg.redis.url is None
    assert redis_url(cfg.redis) == "redis://app:p%40ss%2Fw%3Ard@cache:6380/2"
    assert redis_url(parse({"redis": {"port": 7000}}).redis) == "redis://127.0.0.1:7000/0"
    assert redis_url(parse({"redis": {"host": "::1"}}).redis) == "redis://[::1]:6379/0"


def test_redis_tls_forms(tmp_path: Path) -> None:
    assert parse({"redis": {"url": "rediss://h:1/0"}}).redis.tls == TLSConfig()
    assert redis_url(parse({"redis": {"url": "redis://h:1/0", "tls": True}}).redis) == (
        "rediss://h:1/0")
    assert parse({"redis": {"tls": {}}}).redis.tls == TLSConfig()
    tls = {"caFile": "certs/ca.pem", "cert_file": "/etc/c.pem", "keyFile": "k.pem",
           "verify": False}
    got = parse({"redis": {"host": "h", "tls": tls}}, project=tmp_path).redis.tls
    assert got == TLSConfig(ca_file=str(tmp_path / "certs" / "ca.pem"), cert_file="/etc/c.pem",
                            key_file=str(tmp_path / "k.pem"), verify=False)
    assert problems_of({"redis": {"tls": "yes"}}) == [
        "redis.tls: expected true, false or a mapping {ca_file, cert_file, key_file, verify},"
        " got 'yes'"
    ]
    assert problems_of({"redis": {"url": "rediss://h/0", "tls": False}}) == [
        "redis.tls: false contradicts the rediss:// url"
    ]
    assert problems_of({"redis": {"url": "unix:///tmp/r.sock", "tls": True}}) == [
        "redis.tls: cannot be used with a unix:// url"
    ]


def test_redis_embedded_rules() -> None:
    cfg = parse({"redis": {"embedded": True}})
    assert cfg.redis.embedded and cfg.redis.url is None and cfg.redis.host is None
    with pytest.raises(ConfigError, match=r"redis.embedded"):
        redis_url(cfg.redis)
    for other in ({"url": "redis://h/0"}, {"host": "h"}):
        assert problems_of({"redis": {"embedded": True, **other}}) == [
            "redis.embedded: cannot be combined with redis.url/host"
        ]
    assert problems_of({"redis": {"embedded": "true", "cluster": True}}) == [
        "redis.cluster: cannot be combined with redis.embedded"
    ]


def test_redis_value_errors() -> None:
    data = {"redis": {"url": "http://h/0", "port": 70000, "db": -1, "cluster": "yes",
                      "host": ""}}
    assert problems_of(data) == [
        "redis.url: expected a redis://, rediss:// or unix:// url, got 'http://h/0'",
        "redis.host: expected a non-empty string, got ''",
        "redis.port: expected a port from 1 to 65535, got 70000",
        "redis.db: expected a non-negative integer, got -1",
        "redis.cluster: expected true or false, got 'yes'",
    ]
    assert problems_of({"redis": {"url": "redis://h:99999/0"}})[0].startswith(
        "redis.url: expected a port from 1 to 65535 in the url")
    assert problems_of({"redis": {"url": "redis://h/zero"}})[0].startswith(
        "redis.url: expected the url path to be a database number")
    assert problems_of({"redis": {"url": "unix://tmp/r.sock"}})[0].startswith(
        "redis.url: expected an absolute socket path")
    assert problems_of({"redis": {"url": "redis://h/0", "host": "h"}}) == [
        "redis.url: cannot be combined with redis.host/port; give one or the other"
    ]


def test_url_overrides_and_unix_db() -> None:
    cfg = parse({"redis": {"url": "redis://h:6379/0", "password": SECRET, "db": 4,
                           "username": "me", "cluster": True}})
    assert redis_url(cfg.redis) == f"redis://me:{SECRET}@h:6379/4"
    assert cfg.redis.cluster is True
    unix = parse({"redis": {"url": "unix:///run/redis.sock?db=1", "db": 3}}).redis
    assert redis_url(unix) == "unix:///run/redis.sock?db=3"


# --------------------------------------------------------------------------- password safety


def test_url_password_moves_out_of_url_and_repr() -> None:
    cfg = parse({"redis": {"url": f"redis://app:{SECRET}@cache:6379/1"}})
    assert cfg.redis.url == "redis://app@cache:6379/1"
    assert cfg.redis.password == SECRET
    assert redis_url(cfg.redis) == f"redis://app:{SECRET}@cache:6379/1"
    query = parse({"redis": {"url": f"redis://cache/0?password={SECRET}&protocol=3"}})
    assert query.redis.url == "redis://cache/0?protocol=3"
    assert redis_url(query.redis) == f"redis://:{SECRET}@cache/0?protocol=3"
    for shown in (repr(cfg), str(cfg), repr(cfg.redis), repr(query)):
        assert SECRET not in shown


def test_password_key_never_in_repr() -> None:
    cfg = parse({"redis": {"host": "h", "password": "${PW}"}}, {"PW": SECRET})
    assert cfg.redis.password == SECRET
    assert SECRET not in repr(cfg) and SECRET not in str(cfg)


def test_password_never_in_errors() -> None:
    data = {"redis": {"url": f"http://u:{SECRET}@h/0", "password": [SECRET]}}
    problems = problems_of(data)
    assert problems == [
        "redis.url: expected a redis://, rediss:// or unix:// url, got 'http://u:***@h/0'",
        "redis.password: expected a string, got a list",
    ]
    bad_port = problems_of({"redis": {"url": f"redis://:{SECRET}@h:0/0"}})
    assert SECRET not in "\n".join(bad_port)
    assert "redis://:***@h:0/0" in bad_port[0]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:pw@host", "redis://:***@host"),
        ("rediss://user@host/0", "rediss://user@host/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
        ("unix://:pw@/tmp/redis.sock?db=1", "unix://:***@/tmp/redis.sock?db=1"),
        ("redis://h/0?password=pw&db=1", "redis://h/0?password=***&db=1"),
        ("redis://u:p@ss/w@host/0", "redis://u:***@host/0"),
        ("", ""),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# --------------------------------------------------------------------------- worker section


def test_worker_values_and_aliases() -> None:
    data = {"worker": {"concurrency": 3, "lockMs": 100, "stalledIntervalMs": "250",
                       "maxStalls": 0, "shutdownGraceS": 0.5}}
    worker = parse(data).worker
    assert (worker.concurrency, worker.lock_ms, worker.stalled_interval_ms) == (3, 100, 250)
    assert (worker.max_stalls, worker.shutdown_grace_s) == (0, 0.5)


def test_worker_errors() -> None:
    data = {"worker": {"concurrency": 0, "lock_ms": 99, "stalled_interval_ms": True,
                       "max_stalls": -1, "shutdown_grace_s": "soon"}}
    assert problems_of(data) == [
        "worker.concurrency: expected a positive integer, got 0",
        "worker.lock_ms: expected an integer >= 100 (milliseconds), got 99",
        "worker.stalled_interval_ms: expected an integer >= 100 (milliseconds), got True",
        "worker.max_stalls: expected a non-negative integer, got -1",
        "worker.shutdown_grace_s: expected a number of seconds >= 0, got 'soon'",
    ]


# --------------------------------------------------------------------------- all at once


def test_every_problem_is_collected_in_one_error(tmp_path: Path) -> None:
    text = (
        "jobs:\n  queues: [ok, 'bad:name']\n  options:\n    attempts: five\n"
        "    removeOnComplete: -3\n    backoff: {type: linear, delay: 10}\n"
        "redis:\n  embedded: true\n  url: redis://h/0\n  port: nope\n"
        "worker:\n  concurrency: many\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    problems = info.value.problems
    assert len(problems) == 7
    assert "jobs.options.attempts: expected a positive integer, got 'five'" in problems
    assert "redis.embedded: cannot be combined with redis.url/host" in problems
    assert str(info.value) == "\n".join(problems)
    assert all(p.split(":")[0].startswith(("jobs.", "redis.", "worker.")) for p in problems)


@pytest.mark.parametrize("key", ["url", "host"])
def test_an_unset_redis_variable_warns_that_the_default_server_is_used(key: str) -> None:
    data = {"jobs": {"queues": ["default"]}, "redis": {key: "${LARK_TEST_UNSET_REDIS}"}}
    cfg = parse_config(data, None, env={})
    assert cfg.redis.url == DEFAULT_REDIS_URL
    assert cfg.warnings == (f"redis.{key}: ${{LARK_TEST_UNSET_REDIS}} is not set, so Lark connects "
                            f"to the default {DEFAULT_REDIS_URL}",)


def test_a_set_or_defaulted_redis_variable_does_not_warn() -> None:
    for section, env in (({"url": "${R}"}, {"R": "redis://10.0.0.5:6379/0"}),
                         ({"url": "${R:-redis://127.0.0.1:6379/0}"}, {}),
                         ({"url": "${R}", "host": "10.0.0.6"}, {})):
        cfg = parse_config({"jobs": {"queues": ["default"]}, "redis": section}, None, env=env)
        assert cfg.warnings == (), section
