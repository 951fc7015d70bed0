"""The client of Stonetown's Permify-compatible HTTP API: tenants, schemas, checks and data, for
one tenant. The CLI's schema, check, tuples, import and export commands use it.

Values cross as the storage layer's ``Tuple`` and ``Attribute``, turned into and out of the wire
shape by ``api.models``, so the client and the server agree on the format by construction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from api import models as m
from api.client.errors import ClientError
from api.client.transport import DEFAULT_TIMEOUT, DEFAULT_URL, Session
from engine.types import Entity
from storage.base import DEFAULT_TENANT, Attribute, AttributeFilter, Subject, Tuple, TupleFilter

#: Items a page read asks for; the server's models allow up to ``models.MAX_PAGE_SIZE``.
READ_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class SchemaText:
    """A schema version as ``schemas/read`` returns it: the compiled definition and, from a
    Stonetown server, the text it was written as (``x_schema_text``; None from other servers)."""

    definition: Mapping[str, Any]
    text: str | None


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


#: One tuple of a data write, its six strings encoded already (`m.tuple_json`'s shape).
_TUPLE_JSON = (
    '{"entity":{"type":%s,"id":%s},"relation":%s,'
    '"subject":{"type":%s,"id":%s,"relation":%s}}'
)


def data_write_body(tuples: Sequence[Tuple], attributes: Sequence[Attribute]) -> bytes:
    """A data write's JSON body: the JSON of ``{"tuples": [m.tuple_json(t), ...],
    "attributes": [m.attribute_json(a), ...]}``, the tuples written as text directly (each
    string escaped as ``json.dumps`` escapes it), since a bulk import sends hundreds of
    thousands: about 0.5 µs a tuple instead of 1.6."""
    q = encode_basestring_ascii
    text = ",".join(
        [_TUPLE_JSON % (q(t[0]), q(t[1]), q(t[2]), q(t[3]), q(t[4]), q(t[5])) for t in tuples]
    )
    rest = json.dumps([m.attribute_json(a) for a in attributes], separators=(",", ":"))
    return f'{{"tuples":[{text}],"attributes":{rest}}}'.encode("ascii")


def attribute_filter_json(flt: AttributeFilter) -> dict[str, Any]:
    return {
        "entity": {"type": flt.entity_type, "ids": list(flt.entity_ids)},
        "attributes": list(flt.names),
    }


class Client(Session):
    """Talks to one server, for one tenant. Use as a context manager, or call ``close``."""

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

    # -- transport ---------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | bytes | None = None
    ) -> Any:
        return self._json(method, path, body=body)

    def _tenant_path(self, rest: str) -> str:
        return f"/v1/tenants/{quote(self.tenant, safe='')}/{rest}"

    def _post(self, rest: str, body: Mapping[str, Any] | bytes) -> dict[str, Any]:
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
        answer = self._post("data/write", data_write_body(tuples, attributes))
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
