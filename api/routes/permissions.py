"""Permissions: check, bulk check, expand, lookups, subject permission.

Each handler parses the body, runs the engine in the worker threads and formats the answer.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web

from api import models as m
from api.models.plain_checks import PlainCheck, plain_check
from api.request_io import (
    body_now,
    context_of,
    documented,
    end_stream,
    invalid_token,
    json_body,
    ndjson_line,
    ndjson_stream,
    parse,
    respond,
    respond_bytes,
    tenant_of,
    token_field,
    validated,
)
from api.services import METRICS, SERVICES, Services
from engine.engine import Engine
from engine.errors import EngineError, UnknownPermission
from engine.expand import ExpandTree
from engine.suggest import suggest
from engine.types import (
    DEFAULT_LOOKUP_PAGE_SIZE,
    CheckItem,
    CheckResult,
    Entity,
    LookupPage,
    RequestOptions,
    SubjectReference,
)
from storage.errors import InvalidToken

routes = web.RouteTableDef()
#: Ids a stream takes from the engine per hop to a worker thread.
STREAM_CHUNK = 512


def options_of(meta: m.CheckMetadata, context: m.ContextIn | None) -> RequestOptions:
    """The options every permission request carries: its snapshot, schema version, depth
    budget and context."""
    return RequestOptions(meta.snap_token, meta.schema_version, meta.depth, context_of(context))


@routes.post("/v1/tenants/{tenant_id}/permissions/check")
@documented(
    "Can the subject do this on the entity?", m.CheckRequest, m.CheckResponse, tag="Permission"
)
async def check(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    raw = body_now(request)
    if raw is None:
        raw = await json_body(request)
    # The usual body read plainly; any other through the models, which say what is wrong.
    asked = plain_check(raw) or _check_of(validated(raw, m.CheckRequest))
    entity, permission, subject, options = asked
    svc = request.app[SERVICES]
    try:
        result = svc.check_inline(tenant, entity, permission, subject, options)
        if result is None:
            result = await svc.run(svc.engine.check, tenant, entity, permission, subject, options)
    except InvalidToken as exc:
        raise invalid_token("metadata.snap_token", exc) from exc
    except UnknownPermission as exc:
        raise await svc.run(
            _suggesting, svc.engine, tenant, options, (entity.type, permission), exc
        ) from exc
    request.app[METRICS].count_check("allowed" if result.allowed else "denied")
    return respond_bytes(m.check_bytes(result.allowed, result.check_count))


def _check_of(body: m.CheckRequest) -> PlainCheck:
    """A check request's question, as the engine takes it."""
    return PlainCheck(
        Entity(body.entity.type, body.entity.id),
        body.permission,
        body.subject.to_subject(),
        options_of(body.metadata, body.context),
    )


async def run_check(svc: Services, tenant: str, body: m.CheckRequest) -> CheckResult:
    """A check request's answer (the gRPC route's), on the event loop when small."""
    return await svc.check(tenant, *_check_of(body))


def _suggesting(
    engine: Engine,
    tenant: str,
    options: RequestOptions,
    asked: tuple[str, str],
    exc: UnknownPermission,
) -> UnknownPermission:
    """``exc`` about the permission ``asked`` (entity type, name) of a check, naming the
    closest names the entity type has: "did you mean `view`?"."""
    entity_type, name = asked
    if f"`{name}`" not in str(exc):  # about another name (a rule's, say): as it is
        return exc
    try:
        schema = engine.compiled(tenant, options.schema_version).schema
    except EngineError:
        return exc
    definition = schema.entity(entity_type)
    close = suggest(name, definition.references) if definition is not None else ()
    if not close:
        return exc
    hint = " or ".join(f"`{c}`" for c in close)
    return UnknownPermission(f"{exc}; did you mean {hint}?")


def _result_label(result: CheckResult | EngineError) -> str:
    if isinstance(result, EngineError):
        return "error"
    return "allowed" if result.allowed else "denied"


@routes.post("/v1/tenants/{tenant_id}/permissions/bulk-check")
@documented(
    "Up to 100 checks at one snapshot; an item whose check fails is DENIED, in request order.",
    m.BulkCheckRequest,
    m.BulkCheckResponse,
    tag="Permission",
)
async def bulk_check(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.BulkCheckRequest)
    svc = request.app[SERVICES]
    results = await run_bulk_check(svc, tenant, body)
    metrics = request.app[METRICS]
    for r in results:
        metrics.count_check(_result_label(r))
    return respond(
        {
            "results": [
                m.check_json(False, 0)
                if isinstance(r, EngineError)
                else m.check_json(r.allowed, r.check_count)
                for r in results
            ]
        }
    )


async def run_bulk_check(
    svc: Services, tenant: str, body: m.BulkCheckRequest
) -> list[CheckResult | EngineError]:
    """A bulk check's answers, in request order (the HTTP and gRPC routes')."""
    items = [
        CheckItem(Entity(i.entity.type, i.entity.id), i.permission, i.subject.to_subject())
        for i in body.items
    ]
    with token_field("metadata.snap_token"):
        return await svc.run(
            svc.engine.bulk_check, tenant, items, options_of(body.metadata, body.context)
        )


@routes.post("/v1/tenants/{tenant_id}/permissions/expand")
@documented(
    "The permission's tree of subjects (Permify's expand).",
    m.ExpandRequest,
    m.ExpandResponse,
    tag="Permission",
)
async def expand(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.ExpandRequest)
    svc = request.app[SERVICES]
    tree = await expand_tree(svc, tenant, body)
    # A tree of thousands of nodes takes a while to format: not on the event loop.
    return await svc.run(_tree_response, tree)


async def expand_tree(svc: Services, tenant: str, body: m.ExpandRequest) -> ExpandTree:
    """The expand tree a request asks for, on a worker thread (the HTTP and gRPC routes')."""
    with token_field("metadata.snap_token"):
        return await svc.run(
            svc.engine.expand,
            tenant,
            Entity(body.entity.type, body.entity.id),
            body.permission,
            RequestOptions(
                snap_token=body.metadata.snap_token,
                schema_version=body.metadata.schema_version,
                context=context_of(body.context),
            ),
        )


def _tree_response(tree: ExpandTree) -> web.Response:
    return respond({"tree": m.expand_json(tree)})


@routes.post("/v1/tenants/{tenant_id}/permissions/lookup-entity")
@documented(
    "Ids of the entities of a type the subject has the permission on, a page at a time.",
    m.LookupEntityRequest,
    m.LookupEntityResponse,
    tag="Permission",
)
async def lookup_entity(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.LookupEntityRequest)
    page = await lookup_entity_page(request.app[SERVICES], tenant, body)
    return respond({"entity_ids": list(page.ids), "continuous_token": page.cursor})


async def lookup_entity_page(svc: Services, tenant: str, body: m.LookupEntityRequest) -> LookupPage:
    """A lookup-entity request's page (the HTTP and gRPC routes')."""
    with token_field("metadata.snap_token"):
        return await svc.run(
            svc.engine.lookup_entity,
            tenant,
            body.entity_type,
            body.permission,
            body.subject.to_subject(),
            options_of(body.metadata, body.context),
            scope=m.scope_of(body.scope),
            page_size=body.page_size or DEFAULT_LOOKUP_PAGE_SIZE,
            cursor=body.continuous_token,
        )


async def lookup_entity_ids(
    svc: Services, tenant: str, body: m.LookupEntityRequest
) -> Iterator[tuple[str, str]]:
    """A streamed lookup-entity's (id, continuous token) pairs, computed whole here so that
    errors come before the stream starts; `take` them a chunk at a time."""
    with token_field("metadata.snap_token"):
        return await svc.run(
            svc.engine.lookup_entity_stream,
            tenant,
            body.entity_type,
            body.permission,
            body.subject.to_subject(),
            options_of(body.metadata, body.context),
            scope=m.scope_of(body.scope),
            cursor=body.continuous_token,
        )


def take(ids: Iterator[tuple[str, str]]) -> list[tuple[str, str]]:
    """The next chunk of a streamed lookup (on a worker thread: the engine computes it)."""
    chunk = []
    for item in ids:
        chunk.append(item)
        if len(chunk) == STREAM_CHUNK:
            break
    return chunk


@routes.post("/v1/tenants/{tenant_id}/permissions/lookup-entity-stream")
@documented(
    'As lookup-entity, streamed: one `{"result": {entity_id, continuous_token}}` JSON object '
    "per line (grpc-gateway's newline-delimited form).",
    m.LookupEntityRequest,
    m.LookupEntityStreamLine,
    streaming=True,
    tag="Permission",
)
async def lookup_entity_stream(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    body = await parse(request, m.LookupEntityRequest)
    svc = request.app[SERVICES]
    # The whole answer is computed here, so errors still get their status before streaming.
    ids = await lookup_entity_ids(svc, tenant, body)
    response = ndjson_stream(request)
    await response.prepare(request)
    try:
        while chunk := await svc.run(take, ids):
            await response.write(
                b"".join(
                    ndjson_line({"result": {"entity_id": i, "continuous_token": c}})
                    for i, c in chunk
                )
            )
    except ConnectionResetError:  # the client left: nobody to tell, nothing went wrong
        return response
    except Exception as exc:
        return await end_stream(response, exc)
    return await end_stream(response)


@routes.post("/v1/tenants/{tenant_id}/permissions/lookup-subject")
@documented(
    "Ids of the subjects of a type with the permission on the entity, a page at a time.",
    m.LookupSubjectRequest,
    m.LookupSubjectResponse,
    tag="Permission",
)
async def lookup_subject(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.LookupSubjectRequest)
    page = await lookup_subject_page(request.app[SERVICES], tenant, body)
    return respond({"subject_ids": list(page.ids), "continuous_token": page.cursor})


async def lookup_subject_page(
    svc: Services, tenant: str, body: m.LookupSubjectRequest
) -> LookupPage:
    """A lookup-subject request's page (the HTTP and gRPC routes')."""
    ref = body.subject_reference
    with token_field("metadata.snap_token"):
        return await svc.run(
            svc.engine.lookup_subject,
            tenant,
            Entity(body.entity.type, body.entity.id),
            body.permission,
            SubjectReference(ref.type, "" if ref.relation == "..." else ref.relation),
            options_of(body.metadata, body.context),
            page_size=body.page_size or DEFAULT_LOOKUP_PAGE_SIZE,
            cursor=body.continuous_token,
        )


@routes.post("/v1/tenants/{tenant_id}/permissions/subject-permission")
@documented(
    "Every permission (and relation, unless only_permission) of the entity, for the subject.",
    m.SubjectPermissionRequest,
    m.SubjectPermissionResponse,
    tag="Permission",
)
async def subject_permission(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.SubjectPermissionRequest)
    results = await subject_permissions(request.app[SERVICES], tenant, body)
    return respond(
        {
            "results": {
                name: m.CHECK_ALLOWED if ok else m.CHECK_DENIED for name, ok in results.items()
            }
        }
    )


async def subject_permissions(
    svc: Services, tenant: str, body: m.SubjectPermissionRequest
) -> dict[str, bool]:
    """Whether the subject has each permission (and relation) of the entity (the HTTP and gRPC
    routes')."""
    with token_field("metadata.snap_token"):
        return await svc.run(
            svc.engine.subject_permission,
            tenant,
            Entity(body.entity.type, body.entity.id),
            body.subject.to_subject(),
            options_of(body.metadata, body.context),
            only_permission=body.metadata.only_permission,
        )
