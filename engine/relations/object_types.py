"""Custom object types: the entity types of a tenant's schema, listed, and new ones added.

An object type *is* an entity definition of the tenant's authorization schema (there is no
separate registry): adding one writes a new schema version whose text is the head's with
``entity <name> { ... }`` appended, compiled like every schema write, so it is versioned, shows
in ``schemas/read`` and is visible to checks at once. The write runs under the caller's schema
lock (the one partial schema writes take), so it never loses a concurrent schema change.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.format import format_schema
from dsl.schema import EntityDef, Schema
from engine.relations.errors import Conflict, FieldError, Invalid
from engine.schema_races import SCHEMA_RACES, redone_while_moved
from storage.base import Changes, Record, SnapshotReader, Store
from storage.errors import SchemaNotFound

#: What an object type's name (and a relation name in it) must look like.
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: Words of the schema language that are never names.
RESERVED = frozenset(
    [
        "entity",
        "relation",
        "permission",
        "action",
        "attribute",
        "rule",
        "and",
        "or",
        "not",
        "in",
        "true",
        "false",
    ]
)
NAME_RULE = (
    "a lowercase letter, then up to 63 lowercase letters, digits or _, and not one of the "
    "schema language's words (" + ", ".join(sorted(RESERVED)) + ")"
)


#: Record keyspace of the names created here (``(name,)`` -> ""), so the list can tell them
#: from the entity types the schema had already.
CREATED = "cobj"


@dataclass(frozen=True, slots=True)
class ObjectType:
    name: str
    #: Created through this endpoint (else an entity type the schema was written with).
    custom: bool
    relations: dict[str, list[str]]
    permissions: list[str]
    attributes: list[str]


def describe(entity: EntityDef, *, custom: bool) -> ObjectType:
    return ObjectType(
        name=entity.name,
        custom=custom,
        relations={
            name: [
                ref.type + (f"#{ref.relation}" if ref.relation else "")
                for ref in relation.subject_types
            ]
            for name, relation in entity.relations.items()
        },
        permissions=sorted(entity.permissions),
        attributes=sorted(entity.attributes),
    )


def listing(schema: Schema, reader: SnapshotReader) -> list[ObjectType]:
    created = {record.key[0] for record in reader.records(CREATED)}
    return [
        describe(schema.entities[name], custom=name in created) for name in sorted(schema.entities)
    ]


def check_name(value: object, path: tuple[str | int, ...], errors: list[FieldError]) -> str:
    label = ".".join(str(p) for p in path)
    if not isinstance(value, str) or not value:
        errors.append(FieldError(path, f"{label} is a required string: {NAME_RULE}"))
        return ""
    if not NAME.fullmatch(value) or value in RESERVED:
        errors.append(FieldError(path, f"{label} {value!r} is not a valid name: {NAME_RULE}"))
    return value


def add(
    store: Store,
    lock: threading.Lock,
    tenant: str,
    name: str,
    relations: Mapping[str, Sequence[str]],
) -> tuple[ObjectType, str]:
    """Append ``entity name { relation r @t ... }`` to the head schema as a new version; the
    new type and the version. 409 when the schema has the name already; 400 when the result
    does not compile (a relation naming an unknown type)."""
    # Each attempt reads the head afresh (under ``lock``), so the moved head is not needed.
    added = redone_while_moved(lambda _: _add_on(store, lock, tenant, name, relations), "")
    if added is None:
        raise Conflict(
            "schema_busy",
            f"the schema changed {SCHEMA_RACES} times while adding {name}; try again",
            {"name": name},
        )
    return added


def _add_on(
    store: Store,
    lock: threading.Lock,
    tenant: str,
    name: str,
    relations: Mapping[str, Sequence[str]],
) -> tuple[ObjectType, str]:
    with lock:
        try:
            current = store.read_schema(tenant)
            text, parent = current.text, current.version
        except SchemaNotFound:
            text, parent = "", ""
        if text and name in load(text).entities:
            raise Conflict(
                "type_exists",
                f'object type "{name}" exists already in the schema',
                {"name": name},
            )
        members = "".join(
            f"    relation {relation} {' '.join('@' + t for t in targets)}\n"
            for relation, targets in relations.items()
        )
        new_text = f"{text.rstrip()}\n\nentity {name} {{\n{members}}}\n".lstrip()
        try:
            schema = load(new_text)
        except SchemaError as exc:
            raise Invalid([FieldError(("relations",), d.message) for d in exc.diagnostics]) from exc
        version = store.write_schema(tenant, format_schema(new_text), parent=parent).version
        store.write(tenant, Changes(put_records=[Record(CREATED, (name,), b"")]))
    return describe(schema.entities[name], custom=True), version
