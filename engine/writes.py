"""Write validation: does a tuple or attribute fit the compiled schema? (Permify's ValidateTuple /
ValidateAttribute.)

The data-write API and the validation-file runner call these before anything reaches the store;
stored data is never re-validated (a tuple written before a schema change is followed as-is). The
checks run in Permify's order, so the same bad write gets the same error: entity type, then
"entity equals subject", then relation, then subject type.
"""

from __future__ import annotations

from collections.abc import Iterable

from dsl.schema import AttributeDef, EntityDef, ReferenceKind, Schema
from engine.errors import (
    AttributeNotDefined,
    AttributeTypeMismatch,
    EntityIsSubject,
    EntityNotDefined,
    RelationNotDefined,
    SubjectTypeNotAllowed,
)
from storage.base import Attribute, AttributeKey, Subject, Tuple


def attribute_text(a: Attribute) -> str:
    """Permify's string form ``type:id$name|valuetype:value`` (arrays comma-separated)."""
    values = a.value if isinstance(a.value, tuple) else (a.value,)
    shown = ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)
    return f"{a.entity_type}:{a.entity_id}${a.name}|{a.type.keyword}:{shown}"


def _listing(names: Iterable[object]) -> str:
    items = sorted(str(n) for n in names)
    return ", ".join(items) if items else "(none)"


def _misnamed(name: str, kind: ReferenceKind | None, wanted: str) -> str:
    if kind is None:
        return f"`{name}` is not defined"
    article = "an" if kind is ReferenceKind.ATTRIBUTE else "a"
    return f"`{name}` is {article} {kind.value}, not {wanted},"


def _entity(schema: Schema, entity_type: str, what: str) -> EntityDef:
    definition = schema.entity(entity_type)
    if definition is None:
        raise EntityNotDefined(
            f"{what}: entity type `{entity_type}` is not defined in the schema; "
            f"defined entities: {_listing(schema.entities)}",
        )
    return definition


def check_tuple(schema: Schema, t: Tuple) -> None:
    """Raise an InvalidWrite subclass unless ``t`` may be written under ``schema``.

    ``t.relation`` must be a relation (not a permission or attribute) of the entity type, and the
    subject's ``type`` or ``type#relation`` one of the types that relation declares. A tuple may
    not relate an object to itself (``group:1#member@group:1#member``).
    """
    definition = schema.entity(t.entity_type)
    relation = definition.relations.get(t.relation) if definition is not None else None
    if (
        relation is not None
        and relation.allows(t.subject_type, t.subject_relation)
        and (t.subject_type, t.subject_id, t.subject_relation)
        != (t.entity_type, t.entity_id, t.relation)
    ):
        return  # the common case, without building the messages below
    what = f"tuple {t}"
    definition = _entity(schema, t.entity_type, what)
    if t.subject == Subject(t.entity_type, t.entity_id, t.relation):
        raise EntityIsSubject(
            f"{what}: the entity and the subject are the same object and relation; "
            "a tuple may not relate something to itself",
        )
    relation = definition.relations.get(t.relation)
    if relation is None:
        found = _misnamed(t.relation, definition.references.get(t.relation), "a relation")
        raise RelationNotDefined(
            f"{what}: {found} on entity `{t.entity_type}`; "
            f"its relations: {_listing(definition.relations)}",
        )
    if not relation.allows(t.subject_type, t.subject_relation):
        shown = f"{t.subject_type}#{t.subject_relation}" if t.subject_relation else t.subject_type
        raise SubjectTypeNotAllowed(
            f"{what}: subject type `{shown}` is not allowed in "
            f"`{t.entity_type}#{t.relation}`, which admits: {_listing(relation.subject_types)}",
        )


def _declared_attribute(schema: Schema, entity_type: str, name: str, what: str) -> AttributeDef:
    """The attribute ``entity_type#name`` declares, or an InvalidWrite subclass."""
    definition = _entity(schema, entity_type, what)
    declared = definition.attributes.get(name)
    if declared is None:
        found = _misnamed(name, definition.references.get(name), "an attribute")
        raise AttributeNotDefined(
            f"{what}: {found} on entity `{entity_type}`; "
            f"its attributes: {_listing(definition.attributes)}",
        )
    return declared


def check_attribute(schema: Schema, a: Attribute) -> None:
    """Raise InvalidWrite unless ``a`` names an attribute of its entity type with the same type."""
    what = f"attribute {attribute_text(a)}"
    declared = _declared_attribute(schema, a.entity_type, a.name, what)
    if declared.type is not a.type:
        raise AttributeTypeMismatch(
            f"{what}: `{a.entity_type}#{a.name}` is declared `{declared.type.keyword}`, "
            f"the value is `{a.type.keyword}`",
        )


def check_attribute_key(schema: Schema, key: AttributeKey) -> None:
    """Raise InvalidWrite unless ``key`` names a declared attribute of its entity type (what an
    attribute delete must name; no value, so no type to compare)."""
    what = f"attribute {key.entity_type}:{key.entity_id}${key.name}"
    _declared_attribute(schema, key.entity_type, key.name, what)
