"""The console's one endpoint of its own: validating a schema without saving it."""

from __future__ import annotations

from pydantic import Field

from api.models.common import Out, Wire


class SchemaValidateRequest(Wire):
    schema_: str = Field(alias="schema")


class DiagnosticOut(Out):
    line: int = Field(ge=1, description="1-based line of the problem.")
    column: int = Field(ge=1, description="1-based column, in characters (code points).")
    message: str


class SchemaValidateResponse(Out):
    valid: bool
    diagnostics: list[DiagnosticOut] = Field(
        description="Every problem found, sorted by position (empty when the schema is valid)."
    )
