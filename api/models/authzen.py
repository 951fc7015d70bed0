"""The OpenID AuthZEN Authorization API 1.0 wire format: request and response bodies of the
evaluation, evaluations and search endpoints and the PDP metadata document.

AuthZEN's own JSON, not Permify's: snake_case names only, unknown fields ignored (the spec says
receivers MUST ignore them). Names and ids follow Stonetown's patterns, since the engine can hold
no others; an id the spec says is ignored (the searched-for entity's) may be any string. Objects
that are optional may be left out but are never ``null``: the spec asks senders to omit them,
and the OpenAPI document says so (``_absent_or_object``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from api.models.common import MAX_PAGE_SIZE, Id, Name, Out

Properties = dict[str, Any]
#: The evaluations semantics of ``options.evaluations_semantic``.
Semantic = Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"]
#: Evaluations one ``evaluations`` request may hold.
MAX_EVALUATIONS = 1000


def _whole(value: object) -> object:
    # JSON Schema counts 3.0 as an integer, as the document's readers will; strict mode would not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _absent_or_object(schema: dict[str, Any]) -> None:
    """The document's side of ``_no_nulls``: an optional object is absent, never null."""
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:
            [kept] = [option for option in options if option != {"type": "null"}]
            prop.pop("anyOf")
            prop.pop("default", None)
            prop.update(kept)


class AuthZenIn(BaseModel):
    """A request object: unknown fields ignored, JSON types strict (a number for a string is a
    400), and no ``null`` for an optional object."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, strict=True, json_schema_extra=_absent_or_object
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in cls.model_fields:
                if name in data and data[name] is None:
                    raise ValueError(f"{name} must be an object when given, not null")
        return data


class SubjectIn(AuthZenIn):
    type: Name
    id: Id
    #: Become contextual attributes of the subject (declared attributes only).
    properties: Properties = Field(default_factory=dict)


class ResourceIn(AuthZenIn):
    type: Name
    id: Id
    #: Become contextual attributes of the resource (declared attributes only).
    properties: Properties = Field(default_factory=dict)


class SearchedEntityIn(AuthZenIn):
    """The entity a search looks for: its type; an ``id`` is ignored, as the spec says."""

    type: Name
    id: str = ""
    properties: Properties = Field(default_factory=dict)


class ActionIn(AuthZenIn):
    #: A permission, relation or attribute of the resource's type.
    name: Name
    properties: Properties = Field(default_factory=dict)


class EvaluationRequest(AuthZenIn):
    """Access Evaluation: can ``subject`` do ``action`` on ``resource``?"""

    subject: SubjectIn
    action: ActionIn
    resource: ResourceIn
    context: Properties = Field(default_factory=dict)


class EvaluationItem(AuthZenIn):
    """One evaluation of an ``evaluations`` request; what it leaves out, the top level gives."""

    subject: SubjectIn | None = None
    action: ActionIn | None = None
    resource: ResourceIn | None = None
    context: Properties | None = None


class EvaluationsOptions(AuthZenIn):
    evaluations_semantic: Semantic = "execute_all"


def _defaults_complete(schema: dict[str, Any]) -> None:
    """Say in the document what the handler checks: ``subject``, ``action`` and ``resource``
    each at the top level, or in every item of a non-empty ``evaluations``."""
    _absent_or_object(schema)
    schema["allOf"] = [
        {
            "anyOf": [
                {"required": [key]},
                {
                    "required": ["evaluations"],
                    "properties": {"evaluations": {"minItems": 1, "items": {"required": [key]}}},
                },
            ]
        }
        for key in ("subject", "action", "resource")
    ]


class EvaluationsRequest(AuthZenIn):
    """Access Evaluations: the top-level ``subject``, ``action``, ``resource`` and ``context``
    are defaults for each item, which overrides them key by key."""

    model_config = ConfigDict(json_schema_extra=_defaults_complete)

    subject: SubjectIn | None = None
    action: ActionIn | None = None
    resource: ResourceIn | None = None
    context: Properties | None = None
    evaluations: Annotated[list[EvaluationItem], Field(max_length=MAX_EVALUATIONS)] = Field(
        default_factory=list
    )
    options: EvaluationsOptions = Field(default_factory=EvaluationsOptions)


class PageIn(AuthZenIn):
    """A search's page: the ``next_token`` of the previous answer, and the page size (0 or
    absent: the default). ``properties`` (sorting, filtering) are accepted and not used."""

    token: str = ""
    limit: Annotated[int, Field(ge=0, le=MAX_PAGE_SIZE), BeforeValidator(_whole)] = 0
    properties: Properties = Field(default_factory=dict)


class SubjectSearchRequest(AuthZenIn):
    """Which subjects of ``subject.type`` can do ``action`` on ``resource``?"""

    subject: SearchedEntityIn
    action: ActionIn
    resource: ResourceIn
    context: Properties = Field(default_factory=dict)
    page: PageIn = Field(default_factory=PageIn)


class ResourceSearchRequest(AuthZenIn):
    """On which resources of ``resource.type`` can ``subject`` do ``action``?"""

    subject: SubjectIn
    action: ActionIn
    resource: SearchedEntityIn
    context: Properties = Field(default_factory=dict)
    page: PageIn = Field(default_factory=PageIn)


class ActionSearchRequest(AuthZenIn):
    """Which actions can ``subject`` do on ``resource``?"""

    subject: SubjectIn
    resource: ResourceIn
    context: Properties = Field(default_factory=dict)
    page: PageIn = Field(default_factory=PageIn)


# -- responses ---------------------------------------------------------------------------------


class DecisionOut(Out):
    decision: bool
    #: Only on a denial: why (an error, or a short-circuit of the evaluations semantics).
    context: dict[str, Any] | None = None


class EvaluationsResponse(Out):
    """``evaluations`` in request order; a request without evaluations gets one ``decision``
    (and perhaps its ``context``) instead, as the single evaluation endpoint would answer."""

    evaluations: list[DecisionOut] | None = None
    decision: bool | None = None
    context: dict[str, Any] | None = None


class PageOut(Out):
    #: Give it back as ``page.token`` for the next page; "" on the last page.
    next_token: str
    #: Results in this answer.
    count: int
    #: Results of the whole search (at the snapshot every page of it reads).
    total: int


class EntityOut(Out):
    type: str
    id: str


class ActionOut(Out):
    name: str


class EntitySearchResponse(Out):
    page: PageOut
    results: list[EntityOut]


class ActionSearchResponse(Out):
    page: PageOut
    results: list[ActionOut]


class PdpMetadata(Out):
    """``/.well-known/authzen-configuration``: the PDP identifier and its endpoints' URLs."""

    policy_decision_point: str
    access_evaluation_endpoint: str
    access_evaluations_endpoint: str
    search_subject_endpoint: str
    search_resource_endpoint: str
    search_action_endpoint: str
