"""The client's one exception, ``ClientError``, and how an error answer turns into it.

Both answer shapes the server sends are read: Permify's ``{code, message, details}`` (the
``ErrorCode`` name in ``details[0].reason``, field violations in ``details[1]``) and the
relations layer's Strapi-style envelope ``{"data": null, "error": {...}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx


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
