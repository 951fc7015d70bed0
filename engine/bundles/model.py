"""The bundle model: a ``DataBundle`` (name, argument names, operations), its ``Operation``
steps of template strings, and the errors bundles raise (one class per kind of failure; the API
maps each to Permify's error code in ``api/errors.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.errors import EngineError

#: The four lists of an operation, in the order Permify applies them.
LISTS = ("relationships_write", "attributes_write", "relationships_delete", "attributes_delete")


class BundleError(EngineError):
    """A bundle cannot be written, found or run; the subclass says why.

    ``problems`` lists every problem found (one for most errors; a rejected bundle write reports
    them all, up to a maximum); ``message`` is what ``str()`` gives.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = tuple(problems) or (message,)


class InvalidBundle(BundleError):
    """A bundle name or template is invalid: in a write (every problem listed), in a name asked
    for, or in a stored definition a run reads (Permify's VALIDATION)."""


class DuplicateBundle(BundleError):
    """One write names the same bundle twice (Permify's ALREADY_EXIST)."""


class BundleNotFound(BundleError):
    """The tenant has no bundle of that name (Permify's BUNDLE_NOT_FOUND, HTTP 404)."""

    def __init__(self, tenant: str, name: str) -> None:
        super().__init__(f"tenant {tenant!r} has no bundle `{name}`")
        self.tenant = tenant
        self.name = name


class MissingArgument(BundleError):
    """A run does not give every argument the bundle declares (Permify's MISSING_ARGUMENT)."""


class InvalidArgument(BundleError):
    """A run gives an argument the bundle does not declare, or one that makes a string invalid
    (Permify's INVALID_ARGUMENT)."""


class BundleTooLarge(BundleError):
    """A run would change more items than one write may hold (Permify's
    MAX_DATA_PER_WRITE_EXCEEDED)."""


# --- the model ---------------------------------------------------------------------------------


def _strings(value: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"{what} must be a sequence of strings, not one string")
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise TypeError(f"{what} must hold only strings, got {items!r}")
    return items


@dataclass(frozen=True, slots=True)
class Operation:
    """One step of a bundle: template strings of what to write and delete.

    Any iterable of strings is accepted and kept as a tuple, so operations compare by value.
    """

    relationships_write: tuple[str, ...] = ()
    relationships_delete: tuple[str, ...] = ()
    attributes_write: tuple[str, ...] = ()
    attributes_delete: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in LISTS:
            object.__setattr__(self, name, _strings(getattr(self, name), name))

    def lists(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(list name, strings) for the four lists, in the order Permify applies them."""
        return (
            ("relationships_write", self.relationships_write),
            ("attributes_write", self.attributes_write),
            ("relationships_delete", self.relationships_delete),
            ("attributes_delete", self.attributes_delete),
        )

    @property
    def size(self) -> int:
        """How many items this operation writes or deletes (one per string)."""
        return sum(len(strings) for _, strings in self.lists())


@dataclass(frozen=True, slots=True)
class DataBundle:
    """Permify's ``DataBundle``: a name, the argument names, and the operations in order."""

    name: str
    arguments: tuple[str, ...] = ()
    operations: tuple[Operation, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", _strings(self.arguments, "arguments"))
        operations = tuple(self.operations)
        if not all(isinstance(op, Operation) for op in operations):
            raise TypeError(f"operations must hold Operation values, got {operations!r}")
        object.__setattr__(self, "operations", operations)

    @property
    def size(self) -> int:
        """How many items a run writes or deletes, over all operations."""
        return sum(op.size for op in self.operations)
