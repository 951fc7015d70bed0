"""Watch: a stream of the tenant's changes after a snap token, one change set per line.

Permify serves Watch over gRPC only; Stonetown also serves it over HTTP, in grpc-gateway's
streaming form: ``{"result": {"changes": {"snap_token", "data_changes": [...]}}}`` per line, one
line per write, in revision order. An empty ``snap_token`` starts at the newest revision (only
later writes are sent). The stream stays open until the client leaves or the server stops;
writes through this server are sent at once, others within ``watch_poll_seconds``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from api import models as m
from api.request_io import (
    documented,
    end_stream,
    ndjson_line,
    ndjson_stream,
    parse,
    tenant_of,
    token_field,
)
from api.services import SERVICES, Services
from storage.base import ChangeSet, Operation, Tuple

routes = web.RouteTableDef()
#: Change sets read from the log per poll.
BATCH = 100
_OPERATIONS = {Operation.CREATE: "OPERATION_CREATE", Operation.DELETE: "OPERATION_DELETE"}


def changes_json(change_set: ChangeSet) -> dict[str, Any]:
    """One change set in Permify's wire shape (the HTTP and gRPC watch's)."""
    changes: list[dict[str, Any]] = []
    for change in change_set.changes:
        item = change.item
        entry: dict[str, Any] = {"operation": _OPERATIONS[change.operation]}
        if isinstance(item, Tuple):
            entry["tuple"] = m.tuple_json(item)
        else:
            entry["attribute"] = m.attribute_json(item)
        changes.append(entry)
    return {"snap_token": change_set.token, "data_changes": changes}


async def change_sets(svc: Services, tenant: str, token: str) -> AsyncIterator[ChangeSet | None]:
    """The tenant's change sets after ``token`` (empty: after the newest revision), then each
    new one as it lands, until the server stops (the HTTP and gRPC watch's). Awaiting it reads
    the first batch, so errors (an unknown tenant, a bad or expired token) come before any
    stream starts; the iterator it gives yields ``None`` each time it has waited for writes,
    for the caller to see whether its client is still there."""
    after = token or await svc.run(svc.store.head, tenant)
    with token_field("snap_token"):
        pending = await svc.run(svc.store.changes, tenant, after, limit=BATCH)

    async def feed() -> AsyncIterator[ChangeSet | None]:
        nonlocal after, pending
        poll = svc.config.watch_poll_seconds
        while not svc.closing.is_set():
            for change_set in pending:
                yield change_set
                after = change_set.token
            if len(pending) < BATCH:
                await svc.writes.wait(poll)
                if svc.closing.is_set():
                    break
            yield None
            pending = await svc.run(svc.store.changes, tenant, after, limit=BATCH)

    return feed()


@routes.post("/v1/tenants/{tenant_id}/watch")
@documented(
    "Stream the tenant's changes after a snap token, one change set per line, until the client "
    "disconnects.",
    m.WatchRequest,
    m.WatchLine,
    streaming=True,
    tag="Watch",
)
async def watch(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    body = await parse(request, m.WatchRequest)
    # Errors (unknown tenant, a bad or expired token) surface before the stream starts.
    feed = await change_sets(request.app[SERVICES], tenant, body.snap_token)
    response = ndjson_stream(request)
    await response.prepare(request)
    try:
        await response.write(b"")  # sends the headers, before any wait for writes
        async for change_set in feed:
            if change_set is not None:
                line = {"result": {"changes": changes_json(change_set)}}
                await response.write(ndjson_line(line))
                continue
            transport = request.transport
            if transport is None or transport.is_closing():
                return response  # the client left: there is nobody to end the stream for
    except ConnectionResetError:  # the client left while a line was being written
        return response
    except Exception as exc:  # e.g. the tenant was deleted: say so on the stream, then end it
        return await end_stream(response, exc)
    return await end_stream(response)
