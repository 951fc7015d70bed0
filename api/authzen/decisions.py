"""AuthZEN's evaluations asked of the engine, and the parts the searches share with them.

The mapping: ``subject.type/id`` is the subject, ``resource.type/id`` the entity and
``action.name`` the permission (or relation, or attribute: whatever a check accepts). The
``properties`` of the subject and of the resource become contextual attributes of those two
entities, for the one request: a property named like an attribute the schema declares for the
entity's type must fit that attribute's type (an evaluation with one that does not is denied
with the error in its ``context``); any other property is ignored, as a PDP must take the
properties gateways send (method, path, headers) without knowing them all. ``context`` is the
request context's data (``context.data`` in rules).

Runs on a worker thread: everything here is synchronous. One request's evaluations share one
snapshot and one schema version, taken when the request starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api.errors import translate
from api.models.authzen import Semantic
from api.models.common import INT32
from dsl.schema import AttributeType, Schema
from engine.engine import Engine
from engine.errors import AttributeTypeMismatch, EngineError, SchemaNotFound
from engine.types import Context, Entity, RequestOptions
from storage.base import Attribute, Subject, normalise_value


@dataclass(frozen=True, slots=True)
class Question:
    """One evaluation, its defaults applied."""

    subject: Subject
    subject_properties: Mapping[str, Any]
    resource: Entity
    resource_properties: Mapping[str, Any]
    action: str
    data: Mapping[str, Any]

    @property
    def has_properties(self) -> bool:
        return bool(self.subject_properties or self.resource_properties)


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision and, on a denial that needs explaining, its ``context``."""

    allowed: bool
    context: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """The ``stonetown_checks`` metric's result label."""
        if self.allowed:
            return "allowed"
        return "error" if self.context and "error" in self.context else "denied"

    def json(self) -> dict[str, Any]:
        if self.context is None:
            return {"decision": self.allowed}
        return {"decision": self.allowed, "context": self.context}


#: The context of the denial that ends a ``deny_on_first_deny`` batch (the spec's own example).
SHORT_CIRCUIT = {"code": "200", "reason": "deny_on_first_deny"}


def refused(exc: Exception) -> Decision:
    """A denial because the evaluation failed: the error's status, code and message."""
    api = translate(exc)
    if api is None:  # a bug: the edge logs it and answers 500
        raise exc
    error = {"status": api.status, "code": api.reason, "message": api.message}
    return Decision(False, {"reason": api.message, "error": error})


@dataclass(frozen=True, slots=True)
class Pinned:
    """The snapshot and schema version a request (or a search's pages) is answered at."""

    snap_token: str
    schema_version: str
    schema: Schema

    @classmethod
    def latest(cls, engine: Engine, tenant: str) -> Pinned:
        return cls.at(engine, tenant, engine.store.head(tenant), "")

    @classmethod
    def at(cls, engine: Engine, tenant: str, snap_token: str, schema_version: str) -> Pinned:
        version, schema = engine.schema(tenant, schema_version)
        return cls(snap_token, version, schema)

    def options(self, context: Context) -> RequestOptions:
        return RequestOptions(
            snap_token=self.snap_token, schema_version=self.schema_version, context=context
        )


def attributes_of(
    schema: Schema, entity: Entity, properties: Mapping[str, Any], where: str
) -> list[Attribute]:
    """The contextual attributes ``properties`` give ``entity``: those the schema declares for
    its type (others are ignored); a declared one of another type raises
    AttributeTypeMismatch naming ``where``."""
    definition = schema.entities.get(entity.type)
    if definition is None or not properties:
        return []
    out = []
    for name, value in properties.items():
        declared = definition.attributes.get(name)
        if declared is None:
            continue
        try:
            checked = normalise_value(declared.type, _value(declared.type, value))
            out.append(Attribute(entity.type, entity.id, name, declared.type, checked))
        except ValueError as exc:
            raise AttributeTypeMismatch(
                f"{where}.properties.{name}: {exc} (attribute {name} of {entity.type} is "
                f"{declared.type.keyword})"
            ) from exc
    return out


def _value(kind: AttributeType, value: object) -> object:
    """A JSON value as the attribute's: whole numbers as integers (JSON has one number type),
    integers within Permify's 32 bits, and doubles within a double's range."""
    convert = {AttributeType.INTEGER: _integer, AttributeType.DOUBLE: _double}.get(kind.element)
    if convert is None:
        return value
    if kind.is_array and isinstance(value, list):
        return [convert(v) for v in value]
    return convert(value)


def _double(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{value} is outside the range of a double") from None
    return value


def _integer(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    number = isinstance(value, int) and not isinstance(value, bool)
    if number and not INT32[0] <= value <= INT32[1]:  # type: ignore[operator]
        raise ValueError(f"{value} is outside the 32-bit integer range")
    return value


def context_of(
    schema: Schema,
    data: Mapping[str, Any],
    subject: tuple[Entity, Mapping[str, Any]] | None = None,
    resource: tuple[Entity, Mapping[str, Any]] | None = None,
) -> Context:
    """The engine's context: the entities' properties as attributes, and ``data``."""
    attributes = []
    if subject is not None:
        attributes += attributes_of(schema, subject[0], subject[1], "subject")
    if resource is not None:
        attributes += attributes_of(schema, resource[0], resource[1], "resource")
    return Context(attributes=tuple(attributes), data=dict(data))


def decide_one(engine: Engine, tenant: str, pinned: Pinned, question: Question) -> Decision:
    """One evaluation at ``pinned``; an evaluation that fails is a denial saying why."""
    subject = question.subject
    try:
        context = context_of(
            pinned.schema,
            question.data,
            (Entity(subject.type, subject.id), question.subject_properties),
            (question.resource, question.resource_properties),
        )
        result = engine.check(
            tenant, question.resource, question.action, subject, pinned.options(context)
        )
    except SchemaNotFound:
        raise  # the tenant's, not the evaluation's: the whole request fails
    except EngineError as exc:
        return refused(exc)
    return Decision(result.allowed)


def decide(
    engine: Engine, tenant: str, questions: Sequence[Question], semantic: Semantic
) -> list[Decision]:
    """The evaluations in order, at one snapshot, under ``semantic``: ``execute_all`` answers
    every one; ``deny_on_first_deny`` stops after the first denial (a failure is one), which
    says so in its context if nothing else does; ``permit_on_first_permit`` stops after the
    first permit."""
    pinned = Pinned.latest(engine, tenant)
    out: list[Decision] = []
    for question in questions:
        decision = decide_one(engine, tenant, pinned, question)
        if semantic == "deny_on_first_deny" and not decision.allowed:
            out.append(decision if decision.context else Decision(False, dict(SHORT_CIRCUIT)))
            break
        out.append(decision)
        if semantic == "permit_on_first_permit" and decision.allowed:
            break
    return out
