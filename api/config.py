"""The server's configuration: one frozen dataclass, built from defaults, a YAML file, the
environment (``STONETOWN_*``) and command-line flags, each overriding the one before.

Nothing here is read at import time; ``load_config`` is called by the CLI and tests build a
``Config`` directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from storage.base import DEFAULT_TENANT, TENANT_ID_PATTERN

DEFAULT_PORT = 3476
DEFAULT_GRPC_PORT = 3478
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = "./data"
ENV_PREFIX = "STONETOWN_"
_DATABASE_SCHEMES = ("postgresql://", "postgres://")


class ConfigError(Exception):
    """A configuration value that is missing, malformed or out of range; says which and why."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the server reads; see README "Configuration" for each setting."""

    data_dir: str = DEFAULT_DATA_DIR
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: Port of Permify's gRPC API (api/grpc); 0 disables it. With ``port`` 0 (a free port) and
    #: this left at its default, gRPC also takes a free port (serve logs which).
    grpc_port: int = DEFAULT_GRPC_PORT
    #: Bearer keys; empty means no authentication.
    preshared_keys: tuple[str, ...] = ()
    #: Largest request body accepted; larger ones get 413.
    max_body_bytes: int = 4 << 20
    #: JSON values (objects, arrays, strings, numbers, ...) one request body may hold; more get
    #: 413. Validating a body holds the GIL for about 1.5 µs a value.
    max_body_values: int = 25_000
    #: How long a request body may take to arrive once its headers have; slower ones get 408.
    body_timeout_seconds: float = 30.0
    #: Requests handled at once; more get 429 at once rather than queueing without bound.
    max_concurrency: int = 512
    #: Long-lived streams (watch) open at once, a pool apart from max_concurrency; more get 429.
    max_streams: int = 256
    #: Connections open at once. Beyond it a new connection closes the one that has waited
    #: longest for a request head (new, or idle between requests), or is answered 503 and closed
    #: when every connection is in the middle of a request.
    max_connections: int = 1024
    #: A new connection must send a complete request head within this many seconds.
    header_timeout_seconds: float = 10.0
    #: An idle connection (its last answer sent) must send its next request head within this.
    keepalive_timeout_seconds: float = 75.0
    #: Threads running the engine and the store, off the event loop.
    worker_threads: int = 4
    #: A check is first tried on the event loop with this many dispatches at most (a cached
    #: answer needs none); a bigger one goes to a worker thread. 0 sends every check there.
    inline_dispatches: int = 64
    #: A data write of at most this many tuples and attributes is made on the event loop when
    #: the store can make it without waiting (`Store.transact_now`); others, and every write
    #: then, go to a worker thread. 0 sends every write there.
    inline_write_items: int = 16
    #: Tuples plus attributes one write may hold (Permify's max_data_per_write).
    max_write_items: int = 1000
    #: Deleted versions younger than this stay readable by snap token.
    gc_window_seconds: float = 24 * 60 * 60.0
    #: LevelDB: tuples the tenants' in-memory copies may hold together (about 160 bytes each),
    #: so the engine's reads need no seek; 0 turns them off (storage/leveldb/resident.py).
    resident_tuples: int = 1_000_000
    #: How long a shutdown waits for in-flight requests.
    shutdown_timeout: float = 30.0
    #: Access log: one JSON object per request on the ``stonetown.access`` logger.
    access_log: bool = True
    #: Engine caches (entries per generation), see ``engine.engine.EngineConfig``.
    check_cache_entries: int = 200_000
    read_cache_entries: int = 200_000
    #: Seconds between polls of the change log by an idle watch stream (writes made through this
    #: server wake watchers at once).
    watch_poll_seconds: float = 1.0
    #: The tenant AuthZEN's bare paths (``/access/v1/...``) answer for.
    authzen_default_tenant: str = DEFAULT_TENANT
    #: A PostgreSQL URL (``postgresql://user:password@host:port/db``): the store is that database
    #: instead of LevelDB in ``data_dir``, and several servers may share it. Empty: LevelDB.
    database_url: str = ""
    #: Server processes sharing the port (SO_REUSEPORT); more than one needs ``database_url``.
    workers: int = 1
    #: Without a snap token, an answer may reflect a revision up to this many seconds old
    #: (PostgreSQL only; 0: always the latest committed revision).
    max_staleness_seconds: float = 0.0
    #: PostgreSQL connections each server process keeps open at most.
    db_pool_size: int = 10
    #: How long a PostgreSQL call (a connection, a statement) may take before the request fails
    #: with 503.
    db_timeout_seconds: float = 5.0
    #: How long a PostgreSQL read alone in its process polls for the answer before sleeping
    #: (0: it sleeps at once; at most 1,000).
    db_spin_microseconds: int = 100

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (0 <= self.port <= 65535, f"port must be 0-65535, got {self.port}"),
            (
                0 <= self.grpc_port <= 65535,
                f"grpc_port must be 0-65535 (0 disables gRPC), got {self.grpc_port}",
            ),
            (self.max_body_bytes >= 1024, "max_body_bytes must be at least 1024"),
            (self.max_body_values >= 1000, "max_body_values must be at least 1000"),
            (self.max_concurrency >= 1, "max_concurrency must be at least 1"),
            (self.max_streams >= 1, "max_streams must be at least 1"),
            (self.max_connections >= 1, "max_connections must be at least 1"),
            (self.header_timeout_seconds > 0, "header_timeout_seconds must be positive"),
            (self.keepalive_timeout_seconds > 0, "keepalive_timeout_seconds must be positive"),
            (self.worker_threads >= 1, "worker_threads must be at least 1"),
            (self.inline_dispatches >= 0, "inline_dispatches must not be negative"),
            (self.inline_write_items >= 0, "inline_write_items must not be negative"),
            (self.max_write_items >= 1, "max_write_items must be at least 1"),
            (self.gc_window_seconds >= 0, "gc_window_seconds must not be negative"),
            (self.resident_tuples >= 0, "resident_tuples must not be negative (0: off)"),
            (self.shutdown_timeout >= 0, "shutdown_timeout must not be negative"),
            (self.body_timeout_seconds > 0, "body_timeout_seconds must be positive"),
            (self.watch_poll_seconds > 0, "watch_poll_seconds must be positive"),
            (bool(self.data_dir), "data_dir must not be empty"),
            (
                TENANT_ID_PATTERN.fullmatch(self.authzen_default_tenant) is not None,
                "authzen_default_tenant must be a tenant id (1 to 128 characters from letters, "
                "digits and _ - @ . : +)",
            ),
            (self.workers >= 1, "workers must be at least 1"),
            (self.max_staleness_seconds >= 0, "max_staleness_seconds must not be negative"),
            (self.db_pool_size >= 1, "db_pool_size must be at least 1"),
            (self.db_timeout_seconds > 0, "db_timeout_seconds must be positive"),
            (
                0 <= self.db_spin_microseconds <= 1000,
                "db_spin_microseconds must be 0 to 1000",
            ),
            (
                not self.database_url or self.database_url.startswith(_DATABASE_SCHEMES),
                "database_url must be a PostgreSQL URL (postgresql://user@host:port/database)",
            ),
            (
                self.workers == 1 or bool(self.database_url),
                f"workers={self.workers} needs database_url: LevelDB is single-process (one "
                "server per data directory); serve several processes over PostgreSQL",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for key in self.preshared_keys:
            if not key or key != key.strip():
                raise ConfigError("a preshared key must be non-empty, without surrounding spaces")


_FIELDS = {f.name: f for f in fields(Config)}


def _coerce(name: str, value: object, source: str) -> object:
    """Turn a YAML or environment value into the type of field ``name``."""
    default = getattr(Config(), name)
    try:
        if isinstance(default, tuple):
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError("expected a list of strings (or one comma-separated string)")
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if isinstance(default, int):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            text = str(value).strip()
            if isinstance(value, bool) or not re.fullmatch(r"[+-]?[0-9]+", text):
                raise ValueError(f"expected an integer (e.g. {default}), got {value!r}")
            return int(text)
        if isinstance(default, float):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
            try:
                if isinstance(value, bool):
                    raise ValueError
                return float(str(value).strip())
            except ValueError:
                raise ValueError(f"expected a number (e.g. {default}), got {value!r}") from None
        if not isinstance(value, str | int | float):
            raise ValueError("expected a string")
        return str(value)
    except ValueError as exc:
        raise ConfigError(f"{source}: {name}: {exc}") from exc


def from_file(path: str | os.PathLike[str]) -> dict[str, object]:
    """Read a YAML config file: a mapping of Config field names (unknown keys are errors)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    out: dict[str, object] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise ConfigError(f"config file {path}: unknown setting {key!r} (known: {known})")
        out[name] = _coerce(name, value, f"config file {path}")
    return out


def from_env(environ: Mapping[str, str]) -> dict[str, object]:
    """``STONETOWN_<FIELD>`` variables (``STONETOWN_PRESHARED_KEYS`` is comma-separated)."""
    out: dict[str, object] = {}
    for name in _FIELDS:
        value = environ.get(ENV_PREFIX + name.upper())
        if value is not None and value != "":
            out[name] = _coerce(name, value, f"environment {ENV_PREFIX}{name.upper()}")
    return out


def load_config(
    *,
    file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Config:
    """Defaults, then ``file`` (or ``STONETOWN_CONFIG``), then the environment, then
    ``overrides`` (command-line flags; None values are skipped)."""
    env = os.environ if environ is None else environ
    settings: dict[str, object] = {}
    path = file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        settings.update(from_file(path))
    settings.update(from_env(env))
    for name, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name!r}")
        settings[name] = value
    try:
        return replace(Config(), **settings)  # type: ignore[arg-type]
    except TypeError as exc:  # pragma: no cover - guarded by _FIELDS
        raise ConfigError(str(exc)) from exc


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and the ready line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
