"""A small synchronous client for Stonetown's HTTP API (Permify's wire format); the CLI's client
commands use it.

Every failure arrives as one exception, ``ClientError``: an error answer carries the server's body
(HTTP status, Permify's ``ErrorCode`` name from ``details[0].reason``, the message and the field
violations of ``details[1]``); no answer at all (refused, timed out, a bad URL) has ``status``
None. httpx's exceptions are translated here and never leave this module.

Values cross as the storage layer's ``Tuple`` and ``Attribute``, turned into and out of the wire
shape by ``api.models``, so the client and the server agree on the format by construction.

``RecordsClient`` talks to the relations layer's relationship records (D1-D6, seed 003): plain JSON
records, errors in Strapi's envelope, and retries of 429, 5xx and lost connections with exponential
backoff (``Retry``).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from api import models as m
from engine.relations.listing import MAX_LIMIT
from engine.types import Entity
from storage.base import DEFAULT_TENANT, Attribute, AttributeFilter, Subject, Tuple, TupleFilter

DEFAULT_URL = "http://127.0.0.1:3476"
#: Items a page read asks for; the server's models allow up to ``models.MAX_PAGE_SIZE``.
READ_PAGE_SIZE = 1000

__all__ = [
    "DEFAULT_TENANT",
    "DEFAULT_URL",
    "Client",
    "ClientError",
    "RecordSchema",
    "RecordsClient",
    "Retry",
    "SchemaText",
    "Upserted",
    "Violation",
]


@dataclass(frozen=True, slots=True)
class Violation:
    """One ``google.rpc.BadRequest`` field violation: which field, and what was wrong."""

    field: str
    description: str


class ClientError(Exception):
    """A request that did not succeed.

    ``status`` is the HTTP status, or None when no answer came (connection refused, timeout).
    ``reason`` is Permify's ErrorCode name (``ERROR_CODE_TENANT_NOT_FOUND``), or for the
    relations layer's Strapi envelope its error name (``NotFoundError``); ``violations`` are the
    fields the server named, and ``body`` the error body as sent (None without one).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        violations: Sequence[Violation] = (),
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.violations = tuple(violations)
        self.body = body

    @classmethod
    def from_response(cls, response: httpx.Response) -> ClientError:
        """The error a non-2xx answer describes, from Permify's ``{code, message, details}``."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            strapi = cls._from_strapi(status, body)
            if strapi is not None:
                return strapi
        if not isinstance(body, dict) or not isinstance(body.get("message"), str):
            text = response.text.strip()[:200] or response.reason_phrase
            return cls(f"HTTP {status}: {text}", status=status)
        reason = ""
        violations: list[Violation] = []
        for detail in body.get("details") or ():
            if not isinstance(detail, dict):
                continue
            if not reason and isinstance(detail.get("reason"), str):
                reason = detail["reason"]
            for v in detail.get("field_violations") or detail.get("fieldViolations") or ():
                if isinstance(v, dict):
                    violations.append(
                        Violation(str(v.get("field", "")), str(v.get("description", "")))
                    )
        return cls(body["message"], status=status, reason=reason, violations=violations, body=body)

    @classmethod
    def _from_strapi(cls, status: int, body: dict[str, Any]) -> ClientError | None:
        """The relations layer's ``{"data": null, "error": {status, name, message, details}}``.
        Several field errors (``"2 errors occurred"``) are spelled out after the message."""
        error = body["error"]
        message = error.get("message")
        if not isinstance(message, str):
            return None
        details = error.get("details")
        found = details.get("errors") if isinstance(details, dict) else None
        violations = [
            Violation(".".join(str(part) for part in item.get("path") or ()), item["message"])
            for item in found or ()
            if isinstance(item, dict) and isinstance(item.get("message"), str)
        ]
        if len(violations) > 1:
            message = f"{message}: {'; '.join(v.description for v in violations)}"
        name = error.get("name")
        reason = name if isinstance(name, str) else ""
        return cls(message, status=status, reason=reason, violations=violations, body=body)


@dataclass(frozen=True, slots=True)
class SchemaText:
    """A schema version as ``schemas/read`` returns it: the compiled definition and, from a
    Stonetown server, the text it was written as (``x_schema_text``; None from other servers)."""

    definition: Mapping[str, Any]
    text: str | None


def _user_agent() -> str:
    try:
        return f"stonetown-cli/{version('stonetown')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "stonetown-cli"


def _http_client(
    url: str, key: str | None, timeout: float, transport: httpx.BaseTransport | None
) -> httpx.Client:
    headers = {"User-Agent": _user_agent()}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        return httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
    except httpx.InvalidURL as exc:
        raise ClientError(f"invalid server URL {url!r}: {exc}") from exc


def _no_answer(url: str, path: str, exc: httpx.HTTPError) -> ClientError:
    """The ClientError (status None) for a request that got no answer."""
    if isinstance(exc, httpx.ConnectError):
        return ClientError(f"cannot connect to {url}: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return ClientError(f"no answer from {url} in time: {exc}")
    return ClientError(f"request to {url}{path} failed: {exc}")  # UnsupportedProtocol, ...


def tuple_filter_json(flt: TupleFilter) -> dict[str, Any]:
    """Permify's ``TupleFilter``; ``subject_relation`` None (any) is ``""``, ``""`` (plain
    subjects only) is ``"..."``."""
    relation = flt.subject_relation
    return {
        "entity": {"type": flt.entity_type, "ids": list(flt.entity_ids)},
        "relation": flt.relation,
        "subject": {
            "type": flt.subject_type,
            "ids": list(flt.subject_ids),
            "relation": "" if relation is None else (relation or "..."),
        },
    }


def attribute_filter_json(flt: AttributeFilter) -> dict[str, Any]:
    return {
        "entity": {"type": flt.entity_type, "ids": list(flt.entity_ids)},
        "attributes": list(flt.names),
    }


class _Session:
    """One HTTP connection pool to a server, for one tenant; a context manager."""

    def __init__(
        self,
        url: str,
        key: str | None,
        tenant: str,
        timeout: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.url = url.rstrip("/")
        self.tenant = tenant
        self._http = _http_client(url, key, timeout, transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()


class Client(_Session):
    """Talks to one server, for one tenant. Use as a context manager, or call ``close``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key: str | None = None,
        tenant: str = DEFAULT_TENANT,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, key, tenant, timeout, transport)

    # -- transport ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise _no_answer(self.url, path, exc) from exc
        if not response.is_success:
            raise ClientError.from_response(response)
        try:
            return response.json()
        except ValueError as exc:
            raise ClientError(
                f"{self.url}{path} answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from exc

    def _tenant_path(self, rest: str) -> str:
        return f"/v1/tenants/{quote(self.tenant, safe='')}/{rest}"

    def _post(self, rest: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = self._request("POST", self._tenant_path(rest), body)
        if not isinstance(answer, dict):
            raise ClientError(f"{rest}: expected a JSON object, got {type(answer).__name__}")
        return answer

    @staticmethod
    def _field(answer: Mapping[str, Any], name: str, kind: type) -> Any:
        value = answer.get(name)
        if not isinstance(value, kind):
            raise ClientError(f"the server's answer has no {kind.__name__} field {name!r}")
        return value

    # -- tenants -----------------------------------------------------------------------------

    def create_tenant(self, tenant_id: str, name: str = "") -> None:
        self._request("POST", "/v1/tenants/create", {"id": tenant_id, "name": name})

    def delete_tenant(self, tenant_id: str) -> None:
        self._request("DELETE", f"/v1/tenants/{quote(tenant_id, safe='')}")

    # -- schemas -----------------------------------------------------------------------------

    def write_schema(self, text: str) -> str:
        """Write a schema; returns its version. A schema that does not compile is a 400 whose
        violations are ``schema: line:col: message``."""
        answer = self._post("schemas/write", {"schema": text})
        version_id: str = self._field(answer, "schema_version", str)
        return version_id

    def read_schema(self, schema_version: str = "") -> SchemaText:
        answer = self._post("schemas/read", {"metadata": {"schema_version": schema_version}})
        text = answer.get("x_schema_text")
        return SchemaText(
            self._field(answer, "schema", dict), text if isinstance(text, str) else None
        )

    # -- permissions -------------------------------------------------------------------------

    def check(
        self,
        entity: Entity,
        permission: str,
        subject: Subject,
        *,
        snap_token: str = "",
        depth: int | None = None,
    ) -> bool:
        metadata: dict[str, Any] = {"snap_token": snap_token}
        if depth is not None:
            metadata["depth"] = depth
        answer = self._post(
            "permissions/check",
            {
                "metadata": metadata,
                "entity": {"type": entity.type, "id": entity.id},
                "permission": permission,
                "subject": {"type": subject.type, "id": subject.id, "relation": subject.relation},
            },
        )
        can = answer.get("can")
        if can not in (m.CHECK_ALLOWED, m.CHECK_DENIED):
            raise ClientError(f"the server's check answer has no result: {answer!r}")
        return bool(can == m.CHECK_ALLOWED)

    # -- data --------------------------------------------------------------------------------

    def write_data(self, tuples: Sequence[Tuple], attributes: Sequence[Attribute] = ()) -> str:
        """One atomic ``data/write``; returns its snap token."""
        answer = self._post(
            "data/write",
            {
                "tuples": [m.tuple_json(t) for t in tuples],
                "attributes": [m.attribute_json(a) for a in attributes],
            },
        )
        token: str = self._field(answer, "snap_token", str)
        return token

    def delete_tuples(self, flt: TupleFilter) -> str:
        """Delete the tuples matching a non-empty filter; returns the snap token."""
        answer = self._post("relationships/delete", {"filter": tuple_filter_json(flt)})
        token: str = self._field(answer, "snap_token", str)
        return token

    def _pages(self, rest: str, body: dict[str, Any], items: str) -> Iterator[Any]:
        """Every item, page by page, all at one snapshot: the first page's (``x_snap_token``)
        unless the body names one."""
        cursor = ""
        while True:
            answer = self._post(rest, {**body, "continuous_token": cursor})
            yield from self._field(answer, items, list)
            cursor = answer.get("continuous_token") or ""
            if not cursor:
                return
            pinned = answer.get("x_snap_token")
            if isinstance(pinned, str) and pinned and not body["metadata"]["snap_token"]:
                body = {**body, "metadata": {**body["metadata"], "snap_token": pinned}}

    def head_token(self) -> str:
        """The tenant's newest snap token, without writing (Stonetown's ``x_snap_token``)."""
        answer = self._post(
            "data/relationships/read",
            {"metadata": {"snap_token": ""}, "filter": {}, "page_size": 1},
        )
        token: str = self._field(answer, "x_snap_token", str)
        return token

    def read_tuples(
        self, flt: TupleFilter, *, snap_token: str = "", page_size: int = READ_PAGE_SIZE
    ) -> Iterator[Tuple]:
        """Every tuple matching ``flt``, following ``continuous_token`` page by page."""
        body = {
            "metadata": {"snap_token": snap_token},
            "filter": tuple_filter_json(flt),
            "page_size": page_size,
        }
        for item in self._pages("data/relationships/read", body, "tuples"):
            try:
                yield m.TupleIn.model_validate(item).to_tuple()
            except ValidationError as exc:
                raise ClientError(f"the server sent a malformed tuple {item!r}: {exc}") from exc

    def read_attributes(
        self, flt: AttributeFilter, *, snap_token: str = "", page_size: int = READ_PAGE_SIZE
    ) -> Iterator[Attribute]:
        """Every attribute matching ``flt``, following ``continuous_token`` page by page."""
        body = {
            "metadata": {"snap_token": snap_token},
            "filter": attribute_filter_json(flt),
            "page_size": page_size,
        }
        for item in self._pages("data/attributes/read", body, "attributes"):
            try:
                yield m.AttributeIn.model_validate(item).to_attribute()
            except ValueError as exc:  # pydantic's ValidationError included
                raise ClientError(f"the server sent a malformed attribute {item!r}: {exc}") from exc


# -- relationship records (D1-D6) ---------------------------------------------------------------

#: Retries after the first attempt, the first retry's delay (each further one doubles it) and
#: the longest wait, a Retry-After included.
MAX_RETRIES = 5
RETRY_BASE_DELAY = 0.5
MAX_RETRY_DELAY = 60.0
#: Records one list request asks for by default, and at most (D6's ``max_limit``).
RECORDS_PAGE_SIZE = 100
RECORDS_MAX_PAGE_SIZE = MAX_LIMIT
#: Transport failures worth another try: the server may answer the next one. An unsupported
#: scheme or a request httpx cannot even build will not improve.
_RETRIED_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class Retry:
    """How ``RecordsClient`` retries an answer of 429 or 5xx, or no answer: up to ``retries``
    more times, waiting ``base_delay * 2**n`` before retry n (0-based), or the answer's
    Retry-After when it has one; never longer than ``max_delay``. Other answers, 4xx included,
    are never retried."""

    retries: int = MAX_RETRIES
    base_delay: float = RETRY_BASE_DELAY
    max_delay: float = MAX_RETRY_DELAY

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        wait = self.base_delay * 2**attempt if retry_after is None else retry_after
        return min(wait, self.max_delay)

    @staticmethod
    def wanted(status: int) -> bool:
        return status == 429 or status >= 500


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of D6's ``fields``: may a create (POST) or a patch (PATCH) send it?"""

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
    """D6's description of a relationship record, as far as the client uses it; ``document``
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


class RecordsClient(_Session):
    """Seed 003's relationship records of one tenant (D1-D6), at
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
        timeout: float = 60.0,
        retry: Retry = Retry(),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(url, key, tenant, timeout, transport)
        self.retry = retry
        self._sleep = sleep
        base = f"/v1/tenants/{quote(tenant, safe='')}/xapi2"
        self._data_path = f"{base}/data/relationship"
        self._schema_path = f"{base}/schema/relationship"

    # -- transport ---------------------------------------------------------------------------

    def _exchange(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] | None,
        body: Mapping[str, Any] | None,
    ) -> httpx.Response:
        """The first answer not worth retrying, or the last one when the retries are used up."""
        # A tuple of pairs: httpx types lists of pairs invariantly, tuples covariantly.
        query = None if params is None else tuple(params)
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, params=query, json=body)
            except _RETRIED_ERRORS as exc:
                if attempt >= self.retry.retries:
                    raise _no_answer(self.url, path, exc) from exc
                self._sleep(self.retry.delay(attempt))
            except httpx.HTTPError as exc:
                raise _no_answer(self.url, path, exc) from exc
            else:
                if attempt >= self.retry.retries or not Retry.wanted(response.status_code):
                    return response
                self._sleep(self.retry.delay(attempt, _retry_after(response)))
            attempt += 1

    def _data(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """The answer's ``data`` and ``meta``."""
        response = self._exchange(method, path, params, body)
        if not response.is_success:
            raise ClientError.from_response(response)
        try:
            answer = response.json()
        except ValueError as exc:
            raise ClientError(
                f"{self.url}{path} answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from exc
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

    # -- D1-D6 -------------------------------------------------------------------------------

    def schema(self) -> RecordSchema:
        """D6: the record's fields, filters, sorts, page sizes and endpoint scopes."""
        data, _ = self._data("GET", self._schema_path)
        if not isinstance(data, dict):
            raise ClientError(f"{self.url}{self._schema_path}: expected an object, got {data!r}")
        return RecordSchema.parse(data)

    def get(self, record_id: str) -> dict[str, Any]:
        """D2: one record (404 when missing or not readable)."""
        found: dict[str, Any] = self._record("GET", self._one(record_id))
        return found

    def create(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """D3: a new record (its mirror, of the inverse kind, is written with it)."""
        created: dict[str, Any] = self._record("POST", self._data_path, fields)
        return created

    def update(self, record_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """D4: change label/notes/since (of the pair)."""
        updated: dict[str, Any] = self._record("PATCH", self._one(record_id), fields)
        return updated

    def page(self, params: Sequence[tuple[str, str]]) -> tuple[list[Any], dict[str, Any]]:
        """D1: one page of records and its ``meta.pagination``."""
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
        """D1's records, page by page, until ``limit`` (None: all) or the end. ``filters`` are
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
