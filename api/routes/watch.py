"""Watch: a stream of the tenant's changes after a snap token, one change set per line.

Permify serves Watch over gRPC only; Stonetown also serves it over HTTP, in grpc-gateway's
streaming form: ``{"result": {"changes": {"snap_token", "data_changes": [...]}}}`` per line, one
line per write, in revision order. An empty ``snap_token`` starts at the newest revision (only
later writes are sent). The stream stays open until the client leaves or the server stops;
writes through this server are sent at once, others within ``watch_poll_seconds``.
"""

from __future__ import annotations

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
from api.services import SERVICES
from storage.base import ChangeSet, Operation, Tuple

routes = web.RouteTableDef()
#: Change sets read from the log per poll.
BATCH = 100
_OPERATIONS = {Operation.CREATE: "OPERATION_CREATE", Operation.DELETE: "OPERATION_DELETE"}


def _line(change_set: ChangeSet) -> bytes:
    changes: list[dict[str, Any]] = []
    for change in change_set.changes:
        item = change.item
        entry: dict[str, Any] = {"operation": _OPERATIONS[change.operation]}
        if isinstance(item, Tuple):
            entry["tuple"] = m.tuple_json(item)
        else:
            entry["attribute"] = m.attribute_json(item)
        changes.append(entry)
    return ndjson_line(
        {"result": {"changes": {"snap_token": change_set.token, "data_changes": changes}}}
    )


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
    svc = request.app[SERVICES]
    after = body.snap_token or await svc.run(svc.store.head, tenant)
    # Errors (unknown tenant, a bad or expired token) surface before the stream starts.
    with token_field("snap_token"):
        pending = await svc.run(svc.store.changes, tenant, after, limit=BATCH)
    response = ndjson_stream(request)
    await response.prepare(request)
    poll = svc.config.watch_poll_seconds
    try:
        while not svc.closing.is_set():
            for change_set in pending:
                await response.write(_line(change_set))
                after = change_set.token
            if len(pending) < BATCH:
                await response.write(b"")  # sends the headers, the first time
                await svc.writes.wait(poll)
                if svc.closing.is_set():
                    break
            transport = request.transport
            if transport is None or transport.is_closing():
                return response  # the client left: there is nobody to end the stream for
            pending = await svc.run(svc.store.changes, tenant, after, limit=BATCH)
    except ConnectionResetError:  # the client left while a line was being written
        return response
    except Exception as exc:  # e.g. the tenant was deleted: say so on the stream, then end it
        return await end_stream(response, exc)
    return await end_stream(response)
