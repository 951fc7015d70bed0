"""What the relations layer raises: four kinds of refusal, each carrying what the client needs.

The API renders them in Strapi's error envelope (``api/relations_http.py``); the layer itself knows
nothing of HTTP. Every refusal is raised before anything is written, so no error leaves a partial
write behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one input, at ``path`` (e.g. ``("data", "categories", "connect", 2)``).

    ``value`` and ``suggestions`` are set for unknown names: the name given and the closest known
    ones, best first.
    """

    path: Path
    message: str
    value: str | None = None
    suggestions: tuple[str, ...] | None = None


class RelationsError(Exception):
    """Base of every relations-layer refusal."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(RelationsError):
    """The request is malformed or names something that cannot be used (HTTP 400)."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        assert errors, "an Invalid needs at least one error"
        self.errors = tuple(errors)
        super().__init__(
            errors[0].message if len(errors) == 1 else f"{len(errors)} errors occurred"
        )

    @classmethod
    def at(cls, path: Path, message: str, **extra: Any) -> Invalid:
        return cls([FieldError(path, message, **extra)])


class NotFound(RelationsError):
    """A resource the request names does not exist, or may not be seen (HTTP 404)."""

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors = tuple(errors)


class Conflict(RelationsError):
    """The write would break an invariant (HTTP 409); ``details["code"]`` says which."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = {"code": code, **(details or {})}


class Forbidden(RelationsError):
    """The caller is known but may not do this (HTTP 403)."""

    def __init__(self, message: str, missing_scopes: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing_scopes = tuple(missing_scopes)

    @classmethod
    def missing(cls, *scopes: str) -> Forbidden:
        """The token lacks ``scopes`` (the message names the first)."""
        return cls(f"Missing scope {scopes[0]}", scopes)


class Unauthenticated(RelationsError):
    """No usable credentials (HTTP 401)."""


@dataclass(slots=True)
class Problems:
    """Collects field errors so a request reports every problem at once."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, path: Path, message: str, **extra: Any) -> None:
        self.errors.append(FieldError(path, message, **extra))

    def raise_if_any(self) -> None:
        if self.errors:
            raise Invalid(self.errors)

    def __bool__(self) -> bool:
        return bool(self.errors)
