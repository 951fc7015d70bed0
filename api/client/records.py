"""The client of the relations layer's relationship records: list, get, create, update and
the record's description, for one tenant, plus the row-by-row upsert the CLI builds on them.

Records are plain JSON objects, errors come in a Strapi-style envelope, and every request is
retried as its ``Retry`` says (429, 5xx and lost connections, with exponential backoff).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from api.client.errors import ClientError
from api.client.transport import DEFAULT_RETRY, DEFAULT_TIMEOUT, DEFAULT_URL, Retry, Session
from engine.relations.listing import MAX_LIMIT
from storage.base import DEFAULT_TENANT

#: Records one list request asks for by default, and at most (the description's ``max_limit``).
RECORDS_PAGE_SIZE = 100
RECORDS_MAX_PAGE_SIZE = MAX_LIMIT


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of the record description's ``fields``: may a create (POST) or a patch (PATCH)
    send it?"""

    name: str
    create: bool
    patch: bool

    @property
    def create_only(self) -> bool:
        """Set when the record is created, never changed after (``kind``, ``parent_id``, ...)."""
        return self.create and not self.patch

    @property
    def writable(self) -> bool:
        return self.create or self.patch


def _plural(names: Sequence[str], one: str, several: str) -> str:
    return f"{one if len(names) == 1 else several} {', '.join(names)}"


@dataclass(frozen=True, slots=True)
class RecordSchema:
    """The server's description of a relationship record, as far as the client uses it; ``document``
    is the whole document as the server sent it."""

    document: Mapping[str, Any]
    fields: Mapping[str, FieldSpec]
    filters: frozenset[str]
    max_limit: int

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> RecordSchema:
        try:
            fields = {
                str(f["name"]): FieldSpec(str(f["name"]), bool(f["create"]), bool(f["patch"]))
                for f in document["fields"]
            }
            filters = frozenset(str(f["name"]) for f in document["filters"])
            max_limit = int(document["pagination"]["max_limit"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ClientError(f"the server's relationship schema is malformed: {exc!r}") from exc
        return cls(document, fields, filters, max_limit)

    def unique_problem(self, unique: Sequence[str], columns: Sequence[str]) -> str | None:
        """Why ``unique`` cannot identify records from these columns (None when it can)."""
        if not unique:
            return "give at least one unique field"
        unfiltered = [name for name in unique if name not in self.filters]
        if unfiltered:
            keys = ", ".join(sorted(self.filters))
            return (
                f"{_plural(unfiltered, 'field', 'fields')} cannot be filtered on (filters: {keys})"
            )
        absent = [name for name in unique if name not in columns]
        if absent:
            return f"no column for the unique {_plural(absent, 'field', 'fields')}"
        return None

    def row_problem(self, cells: Mapping[str, str], unique: Sequence[str]) -> str | None:
        """What is wrong with a row's non-empty cells, before anything is asked of the server."""
        unknown = [name for name in cells if name not in self.fields]
        if unknown:
            return _plural(unknown, "unknown column", "unknown columns")
        managed = [n for n in cells if not self.fields[n].writable and n not in unique]
        if managed:
            return f"{_plural(managed, 'field', 'fields')} server-managed, cannot be written"
        empty = [name for name in unique if name not in cells]
        if empty:
            return f"empty unique {_plural(empty, 'field', 'fields')}"
        return None


Action = Literal["created", "updated", "unchanged", "error"]


@dataclass(frozen=True, slots=True)
class Upserted:
    """What ``RecordsClient.upsert`` did with one row."""

    action: Action
    id: str | None = None
    error: str | None = None


class RecordsClient(Session):
    """The relations layer's relationship records of one tenant, at
    ``/v1/tenants/{tenant}/xapi2/...``. Records cross as the JSON objects the server sends.

    Every request is retried as ``retry`` says (``sleep`` waits; tests may record instead).
    Failures raise ``ClientError``; an error answer's message is the envelope's
    ``error.message``. Use as a context manager, or call ``close``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key: str | None = None,
        tenant: str = DEFAULT_TENANT,
        timeout: float = DEFAULT_TIMEOUT,
        retry: Retry = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(url, key, tenant, timeout, transport, retry=retry, sleep=sleep)
        base = f"/v1/tenants/{quote(tenant, safe='')}/xapi2"
        self._data_path = f"{base}/data/relationship"
        self._schema_path = f"{base}/schema/relationship"

    # -- transport ---------------------------------------------------------------------------

    def _data(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """The answer's ``data`` and ``meta``."""
        answer = self._json(method, path, params=params, body=body)
        if not isinstance(answer, dict) or "data" not in answer:
            raise ClientError(f"{self.url}{path}: expected an object with data, got {answer!r}")
        meta = answer.get("meta")
        return answer["data"], meta if isinstance(meta, dict) else {}

    def _record(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data, _ = self._data(method, path, body=body)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ClientError(f"{self.url}{path}: expected a record, got {data!r}")
        return data

    def _one(self, record_id: str) -> str:
        return f"{self._data_path}/{quote(record_id, safe='')}"

    # -- the records -------------------------------------------------------------------------------

    def schema(self) -> RecordSchema:
        """The record's description: its fields, filters, sorts, page sizes and endpoint scopes."""
        data, _ = self._data("GET", self._schema_path)
        if not isinstance(data, dict):
            raise ClientError(f"{self.url}{self._schema_path}: expected an object, got {data!r}")
        return RecordSchema.parse(data)

    def get(self, record_id: str) -> dict[str, Any]:
        """One record (404 when missing or not readable)."""
        found: dict[str, Any] = self._record("GET", self._one(record_id))
        return found

    def create(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A new record, created (its mirror, of the inverse kind, is written with it)."""
        created: dict[str, Any] = self._record("POST", self._data_path, fields)
        return created

    def update(self, record_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change a record's label/notes/since (of the pair)."""
        updated: dict[str, Any] = self._record("PATCH", self._one(record_id), fields)
        return updated

    def page(self, params: Sequence[tuple[str, str]]) -> tuple[list[Any], dict[str, Any]]:
        """One page of the record list and its ``meta.pagination``."""
        data, meta = self._data("GET", self._data_path, params=params)
        pagination = meta.get("pagination")
        if not isinstance(data, list) or not isinstance(pagination, dict):
            raise ClientError(f"{self.url}{self._data_path}: expected a page of records")
        return data, pagination

    def records(
        self,
        *,
        filters: Sequence[tuple[str, str]] = (),
        sort: str | None = None,
        limit: int | None = None,
        page_size: int = RECORDS_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """The listed records, page by page, until ``limit`` (None: all) or the end. ``filters`` are
        ``(key, value)`` pairs; a key repeated means any of its values. Pages follow
        ``next_after`` (keyset, on created_at sorts) or else ``next_offset``."""
        remaining = limit
        cursor: tuple[str, str] | None = None
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            params = [*filters, ("limit", str(size))]
            if sort is not None:
                params.append(("sort", sort))
            if cursor is not None:
                params.append(cursor)
            rows, pagination = self.page(params)
            if remaining is not None:
                rows = rows[:remaining]
                remaining -= len(rows)
            yield from rows
            if not pagination.get("has_more") or not rows:
                return
            after, offset = pagination.get("next_after"), pagination.get("next_offset")
            if isinstance(after, str) and after:
                cursor = ("after", after)
            elif isinstance(offset, int) and not isinstance(offset, bool):
                cursor = ("offset", str(offset))
            else:
                raise ClientError(
                    f"a page with has_more but no next_after or next_offset: {pagination!r}"
                )

    def upsert(
        self, schema: RecordSchema, unique: Sequence[str], cells: Mapping[str, str]
    ) -> Upserted:
        """One row of an upsert: ``cells`` are its non-empty columns. The records whose
        ``unique`` fields equal the row's decide: none -> create; one -> patch the patchable
        columns that differ (or unchanged); a differing create-only column, or several matches,
        is the row's error. So is an error answer of 4xx (the server's message); any other
        failure raises ``ClientError``."""
        problem = schema.row_problem(cells, unique)
        if problem is not None:
            return Upserted("error", error=problem)
        matched = self.records(
            filters=[(name, cells[name]) for name in unique],
            sort="created_at",
            page_size=schema.max_limit,
        )
        try:
            matches = list(matched)
        except ClientError as exc:
            return _row_error(exc, None)
        if len(matches) > 1:
            return Upserted("error", error=f"ambiguous match ({len(matches)})")
        if not matches:
            sent = {name: value for name, value in cells.items() if schema.fields[name].create}
            try:
                created = self.create(sent)
            except ClientError as exc:
                return _row_error(exc, None)
            return Upserted("created", str(created["id"]))
        match = matches[0]
        record_id = str(match["id"])
        frozen = [n for n, v in cells.items() if schema.fields[n].create_only and match.get(n) != v]
        if frozen:
            return Upserted(
                "error", record_id, _plural(frozen, "immutable field", "immutable fields")
            )
        changes = {n: v for n, v in cells.items() if schema.fields[n].patch and match.get(n) != v}
        if not changes:
            return Upserted("unchanged", record_id)
        try:
            self.update(record_id, changes)
        except ClientError as exc:
            return _row_error(exc, record_id)
        return Upserted("updated", record_id)


def _row_error(exc: ClientError, record_id: str | None) -> Upserted:
    """A 4xx answer is the row's error; anything else (no answer, 5xx) stops the run."""
    if exc.status is None or not 400 <= exc.status < 500:
        raise exc
    return Upserted("error", record_id, exc.message)


class RelationsBackupClient(Session):
    """The relations layer's backup of one tenant (admin key only): read it as stored, and
    restore it, at ``/v1/tenants/{tenant}/relations/backup`` and ``.../restore``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key: str | None = None,
        tenant: str = DEFAULT_TENANT,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, key, tenant, timeout, transport)
        self._base = f"/v1/tenants/{quote(tenant, safe='')}/relations"

    def backup(self) -> tuple[dict[str, Any], str]:
        """The settings, types and relation rows, and the snap token they were read at."""
        answer = self._json("GET", f"{self._base}/backup")
        data = answer.get("data") if isinstance(answer, dict) else None
        meta = answer.get("meta") if isinstance(answer, dict) else None
        token = meta.get("snap_token") if isinstance(meta, dict) else None
        if not isinstance(data, dict) or not isinstance(token, str):
            raise ClientError(f"{self.url}{self._base}/backup: expected data and a snap token")
        return data, token

    def restore(self, part: Mapping[str, Any]) -> str:
        """Write ``{settings?, types?, relations?}`` in one write; its snap token."""
        answer = self._json("POST", f"{self._base}/restore", body=part)
        meta = answer.get("meta") if isinstance(answer, dict) else None
        token = meta.get("snap_token") if isinstance(meta, dict) else None
        if not isinstance(token, str):
            raise ClientError(f"{self.url}{self._base}/restore: expected a snap token")
        return token
