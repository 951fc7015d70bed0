"""What the engine raises. Every error says what was wrong and what was expected.

``EngineError`` is the root; the API maps each class to an HTTP status in one table
(``api/errors.py``). Storage errors (TenantNotFound, SnapshotExpired, InvalidToken, ...) pass
through unchanged: they already say what was wrong.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every engine error."""


class InvalidRequest(EngineError):
    """The request itself is malformed: a bad page size, cursor, reference or context item."""


class InvalidCursor(InvalidRequest):
    """A lookup's continuous token that this engine did not issue."""


class SchemaNotFound(EngineError):
    """The tenant has no schema, or not the version asked for (Permify's SCHEMA_NOT_FOUND)."""


class UnknownEntityType(EngineError):
    """The entity type is not defined in the schema version in use."""

    @classmethod
    def of(cls, entity_type: str) -> UnknownEntityType:
        return cls(f"entity type `{entity_type}` is not defined in the schema")


class UnknownPermission(EngineError):
    """The name is not a relation, permission or attribute of the entity type."""

    @classmethod
    def of(cls, entity_type: str, name: str) -> UnknownPermission:
        return cls(f"`{name}` is not a relation, permission or attribute of entity `{entity_type}`")


class DepthExceeded(EngineError):
    """The depth budget ran out before the answer was known; never reported as "denied"."""


class RuleError(EngineError):
    """A rule could not be evaluated (CEL runtime error, or a result that is not boolean)."""


class InvalidWrite(EngineError):
    """A tuple or attribute does not fit the schema; the subclass says how (see
    ``engine/writes.py`` for the order the checks run in)."""


class EntityNotDefined(InvalidWrite):
    """The written tuple's or attribute's entity type is not defined in the schema."""


class EntityIsSubject(InvalidWrite):
    """The tuple relates an object to itself: its subject is its own entity and relation."""


class RelationNotDefined(InvalidWrite):
    """The tuple's relation is not a relation of its entity type (it is undefined, or it names a
    permission or attribute)."""


class SubjectTypeNotAllowed(InvalidWrite):
    """The tuple's subject type (``type`` or ``type#relation``) is not one its relation admits."""


class AttributeNotDefined(InvalidWrite):
    """The attribute is not an attribute of its entity type (undefined, or another kind of
    member)."""


class AttributeTypeMismatch(InvalidWrite):
    """The attribute's value has another type than the schema declares."""


class OverBudget(Exception):
    """An evaluation passed the dispatch budget its caller set (``Engine.check(max_dispatches=)``).

    Deliberately not an EngineError: set operations must not absorb it as an undecided branch.
    It only means "this question is bigger than the caller wanted to answer here": the caller
    asks again without a budget (the API: in a worker thread), and what was finished so far
    stays cached.
    """

    def __init__(self, budget: int) -> None:
        super().__init__(f"the evaluation needs more than {budget} dispatches")
        self.budget = budget
