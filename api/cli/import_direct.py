"""``stonetown import --database-url``: the import's writes go straight into a PostgreSQL
database, through what a server runs for them (no HTTP in between).

A server's data/write validates every item against the schema and writes them through the raw
writer, whose hooks keep the relations layer's pairs whole; schemas/write compiles the schema;
relations/restore restores the layer. ``DirectTarget`` calls those same functions on services
built by the same wiring as the server's (``api.app.services_for``), and turns their errors into
the ``ClientError`` the HTTP client would have raised, so ``api.transfer.run_import`` reports
them (with the file's line) the same way. Servers on the same database see the writes at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from api.app import open_store, services_for
from api.client import ClientError
from api.client.errors import Violation
from api.client.permify import SchemaText
from api.config import Config
from api.errors import translate
from api.routes import data, schemas
from api.routes.tokens import _settings_object
from engine.relations import backup
from engine.relations.errors import Conflict, NotFound, RelationsError
from storage.base import Attribute, Tuple

R = TypeVar("R")


class DirectTarget:
    """The calls ``run_import`` makes of a client (and of the relations restore client), made
    in this process on one tenant of the database ``database_url`` names. Thread-safe, like the
    server's handlers; use as a context manager (closes the store's connections)."""

    def __init__(self, database_url: str, tenant: str) -> None:
        self.tenant = tenant
        self._config = Config(database_url=database_url)
        try:
            self._store = open_store(self._config)
        except Exception as exc:
            raise _client_error(exc) from exc
        self._svc = services_for(self._config, self._store, clock=time.time)

    def __enter__(self) -> DirectTarget:
        if not self._store.claims_complete:  # as a server does on start
            self._call(self._svc.relations.claim_tokens)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._svc.executor.shutdown(wait=True)
        self._store.close()

    def _call(self, fn: Callable[..., R], *args: Any) -> R:
        try:
            return fn(*args)
        except ClientError:
            raise
        except Exception as exc:
            raise _client_error(exc) from exc

    # -- what run_import calls ------------------------------------------------------------

    def write_data(self, tuples: list[Tuple], attributes: list[Attribute]) -> str:
        """One atomic data write, validated as data/write validates it."""
        limit = self._config.max_write_items
        if len(tuples) + len(attributes) > limit:
            raise ClientError(
                f"a write may hold at most {limit} tuples and attributes together",
                status=400,
                reason="ERROR_CODE_MAX_DATA_PER_WRITE_EXCEEDED",
            )
        return self._call(data._write, self._svc, self.tenant, "", tuples, attributes)

    def write_schema(self, text: str) -> str:
        version = self._call(schemas._write, self._store, self.tenant, text)
        return version.version

    def read_schema(self) -> SchemaText:
        """The head schema's text (``definition`` is left empty: only the text is used)."""
        stored = self._call(self._store.read_schema, self.tenant)
        return SchemaText({}, stored.text)

    def head_token(self) -> str:
        return str(self._call(self._store.head, self.tenant))

    def restore(self, part: Mapping[str, Any]) -> str:
        """A relations/restore of one part of a backup."""

        def work() -> str:
            raw = part.get("settings")
            settings = None if raw is None else _settings_object(raw)
            parsed = backup.parse(dict(part), settings)
            return str(self._svc.relations.restore(self.tenant, parsed))

        return self._call(work)


def _client_error(exc: Exception) -> ClientError:
    """The ClientError a server's answer to ``exc`` would have become."""
    if isinstance(exc, RelationsError):
        errors = getattr(exc, "errors", ())
        violations = [Violation(".".join(str(p) for p in e.path), e.message) for e in errors]
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
        return ClientError(
            str(exc), status=status, reason=type(exc).__name__, violations=violations
        )
    api = translate(exc)
    if api is None:
        raise exc
    violations = [Violation(v.field, v.description) for v in api.violations]
    return ClientError(api.message, status=api.status, reason=api.reason, violations=violations)
