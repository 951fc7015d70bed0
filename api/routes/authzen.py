"""The OpenID AuthZEN Authorization API 1.0: access evaluation and evaluations, subject,
resource and action search, and the PDP metadata document.

Every endpoint is served twice: at the spec's default paths (``/access/v1/...``), for the
tenant ``authzen_default_tenant`` names, and under a tenant's prefix
(``/v1/tenants/{tenant_id}/access/v1/...``). The metadata of each lives where RFC 8615 puts it
for that PDP identifier: ``/.well-known/authzen-configuration`` and
``/.well-known/authzen-configuration/v1/tenants/{tenant_id}``. The same edge as every route
(keys, limits, metrics, error bodies) wraps them all. What the engine is asked is
`api.authzen`'s; handlers parse, pick the tenant and format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from api.authzen.decisions import Decision, Question, decide, refused
from api.authzen.searches import (
    Found,
    Resume,
    fingerprint,
    read_token,
    search_actions,
    search_resources,
    search_subjects,
)
from api.errors import bad_request
from api.models import authzen as az
from api.request_io import documented, parse, respond, tenant_of, token_field
from api.services import CONFIG, METRICS, SERVICES
from engine.engine import Engine
from engine.errors import EngineError, SchemaNotFound
from engine.types import EMPTY_CONTEXT, Context, Entity, RequestOptions
from storage.base import Subject

routes = web.RouteTableDef()

TENANT = "/v1/tenants/{tenant_id}"
EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"
SEARCH_SUBJECT = "/access/v1/search/subject"
SEARCH_RESOURCE = "/access/v1/search/resource"
SEARCH_ACTION = "/access/v1/search/action"
WELL_KNOWN = "/.well-known/authzen-configuration"
TAG = "AuthZEN"
#: A bare path's tenant (the configured default) may not exist, or have no schema yet.
_ERRORS = (404,)


def _tenant(request: web.Request) -> str:
    """The path's tenant, or the configured default on the spec's bare paths."""
    if "tenant_id" in request.match_info:
        return tenant_of(request)
    return request.app[CONFIG].authzen_default_tenant


def _question(
    subject: az.SubjectIn, action: az.ActionIn, resource: az.ResourceIn, data: Mapping[str, Any]
) -> Question:
    return Question(
        Subject(subject.type, subject.id),
        subject.properties,
        Entity(resource.type, resource.id),
        resource.properties,
        action.name,
        data,
    )


async def _decide_one(request: web.Request, tenant: str, question: Question) -> Decision:
    """One evaluation. Without properties it is a plain check, tried on the event loop under
    the inline budget first, as Permify's check route does; with them, the schema is needed
    to map them, on a worker thread."""
    svc = request.app[SERVICES]
    engine = svc.engine
    if question.has_properties:
        [decision] = await svc.run(decide, engine, tenant, [question], "execute_all")
        return decision
    context = Context(data=dict(question.data)) if question.data else EMPTY_CONTEXT
    options = RequestOptions(context=context)
    try:
        result = await svc.check(
            tenant, question.resource, question.action, question.subject, options
        )
    except SchemaNotFound:
        raise  # the tenant's, not the evaluation's: a 404
    except EngineError as exc:
        return refused(exc)
    return Decision(result.allowed)


def _count(request: web.Request, decisions: list[Decision]) -> None:
    metrics = request.app[METRICS]
    for decision in decisions:
        metrics.count_check(decision.label)


@routes.post(TENANT + EVALUATION)
@routes.post(EVALUATION)
@documented(
    "AuthZEN Access Evaluation: can the subject do the action on the resource? A denial "
    "because the evaluation failed (say, an unknown action) has the error in its context.",
    az.EvaluationRequest,
    az.DecisionOut,
    tag=TAG,
    errors=_ERRORS,
)
async def evaluation(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    body = await parse(request, az.EvaluationRequest)
    decision = await _decide_one(
        request, tenant, _question(body.subject, body.action, body.resource, body.context)
    )
    _count(request, [decision])
    return respond(decision.json())


@routes.post(TENANT + EVALUATIONS)
@routes.post(EVALUATIONS)
@documented(
    "AuthZEN Access Evaluations: many evaluations at one snapshot, with top-level defaults and "
    "options.evaluations_semantic (execute_all, deny_on_first_deny, permit_on_first_permit).",
    az.EvaluationsRequest,
    az.EvaluationsResponse,
    tag=TAG,
    errors=_ERRORS,
)
async def evaluations(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    body = await parse(request, az.EvaluationsRequest)
    if not body.evaluations:  # the spec: then it is a single evaluation, and answers as one
        subject, action, resource = _complete(body.subject, body.action, body.resource, "")
        question = _question(subject, action, resource, body.context or {})
        decision = await _decide_one(request, tenant, question)
        _count(request, [decision])
        return respond(decision.json())
    questions = []
    for i, item in enumerate(body.evaluations):
        subject, action, resource = _complete(
            item.subject or body.subject,
            item.action or body.action,
            item.resource or body.resource,
            f"evaluations[{i}].",
        )
        context = item.context if item.context is not None else body.context
        questions.append(_question(subject, action, resource, context or {}))
    svc = request.app[SERVICES]
    decisions = await svc.run(
        decide, svc.engine, tenant, questions, body.options.evaluations_semantic
    )
    _count(request, decisions)
    return respond({"evaluations": [d.json() for d in decisions]})


def _complete(
    subject: az.SubjectIn | None,
    action: az.ActionIn | None,
    resource: az.ResourceIn | None,
    where: str,
) -> tuple[az.SubjectIn, az.ActionIn, az.ResourceIn]:
    """An evaluation's three required entities, after the defaults: 400 naming a missing one."""
    for name, value in (("subject", subject), ("action", action), ("resource", resource)):
        if value is None:
            raise bad_request(
                where + name,
                "required: give it in the evaluation or as a top-level default"
                if where
                else "required when there are no evaluations",
            )
    assert subject is not None and action is not None and resource is not None
    return subject, action, resource


def _page(found: Found, results: list[dict[str, str]]) -> web.Response:
    # The spec recommends `page` first: a client can read the count before the results.
    page = {"next_token": found.next_token, "count": len(results), "total": found.total}
    return respond({"page": page, "results": results})


Search = TypeVar(
    "Search", az.SubjectSearchRequest, az.ResourceSearchRequest, az.ActionSearchRequest
)


async def _search(
    request: web.Request,
    model: type[Search],
    name: str,
    run: Callable[[Engine, str, Search, Resume | None, str], Found],
    result: Callable[[Search, str], dict[str, str]],
) -> web.Response:
    """One page of the search ``name``: the body, its page token (tied to the same request
    by ``fingerprint``), the search on a worker thread, and the page."""
    tenant = _tenant(request)
    body = await parse(request, model)
    print_ = fingerprint(name, body)
    resume = read_token(body.page.token, print_)
    svc = request.app[SERVICES]
    with token_field("page.token"):
        found = await svc.run(run, svc.engine, tenant, body, resume, print_)
    return _page(found, [result(body, item) for item in found.items])


@routes.post(TENANT + SEARCH_SUBJECT)
@routes.post(SEARCH_SUBJECT)
@documented(
    "AuthZEN Subject Search: the subjects of subject.type that can do the action on the "
    "resource (lookup-subject), a page at a time.",
    az.SubjectSearchRequest,
    az.EntitySearchResponse,
    tag=TAG,
    errors=_ERRORS,
)
async def search_subject(request: web.Request) -> web.Response:
    return await _search(
        request,
        az.SubjectSearchRequest,
        "subject",
        search_subjects,
        lambda body, found: {"type": body.subject.type, "id": found},
    )


@routes.post(TENANT + SEARCH_RESOURCE)
@routes.post(SEARCH_RESOURCE)
@documented(
    "AuthZEN Resource Search: the resources of resource.type the subject can do the action on "
    "(lookup-entity), a page at a time.",
    az.ResourceSearchRequest,
    az.EntitySearchResponse,
    tag=TAG,
    errors=_ERRORS,
)
async def search_resource(request: web.Request) -> web.Response:
    return await _search(
        request,
        az.ResourceSearchRequest,
        "resource",
        search_resources,
        lambda body, found: {"type": body.resource.type, "id": found},
    )


@routes.post(TENANT + SEARCH_ACTION)
@routes.post(SEARCH_ACTION)
@documented(
    "AuthZEN Action Search: the relations and permissions of the resource the subject has "
    "(subject-permission), in schema order, a page at a time.",
    az.ActionSearchRequest,
    az.ActionSearchResponse,
    tag=TAG,
    errors=_ERRORS,
)
async def search_action(request: web.Request) -> web.Response:
    return await _search(
        request,
        az.ActionSearchRequest,
        "action",
        search_actions,
        lambda _body, found: {"name": found},
    )


@routes.get(WELL_KNOWN + TENANT)
@routes.get(WELL_KNOWN)
@documented(
    "AuthZEN PDP metadata: the PDP identifier (this server, or a tenant's prefix on it) and "
    "its endpoints.",
    None,
    az.PdpMetadata,
    tag=TAG,
)
async def configuration(request: web.Request) -> web.Response:
    base = f"{request.scheme}://{request.host}"
    if "tenant_id" in request.match_info:
        base += f"/v1/tenants/{tenant_of(request)}"
    return respond(
        {
            "policy_decision_point": base,
            "access_evaluation_endpoint": base + EVALUATION,
            "access_evaluations_endpoint": base + EVALUATIONS,
            "search_subject_endpoint": base + SEARCH_SUBJECT,
            "search_resource_endpoint": base + SEARCH_RESOURCE,
            "search_action_endpoint": base + SEARCH_ACTION,
        }
    )
