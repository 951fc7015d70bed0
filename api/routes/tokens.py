"""API tokens, the tenant's relations settings and its relations backup, all for the admin key
only.

``/v1/tenants/{tenant_id}/tokens`` creates, lists and revokes personal access tokens (PATs):
the secret (``pat_`` + 32 base62 characters) is in the creation response once, and only its
sha256 is stored. ``/v1/tenants/{tenant_id}/relations/settings`` reads and replaces the
tenant's relations settings. ``/v1/tenants/{tenant_id}/relations/backup`` reads the settings,
relationship types and relation rows as stored (``engine.relations.backup``) and
``/v1/tenants/{tenant_id}/relations/restore`` writes them back: what ``stonetown export`` and
``import`` carry beside the tuples. An API token, whatever its scopes, gets 403 here.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api.openapi import ENTITY_REF, ROLE_NAME, matching, nullable, text
from api.relations_http import (
    ROLE,
    body_object,
    check_string,
    described,
    entity_ref,
    principal,
    require_admin,
    tenant,
)
from api.relations_views import token_item
from api.request_io import respond
from api.services import SERVICES
from engine.relations import backup
from engine.relations.errors import FieldError, Invalid
from engine.relations.model import ENTITY_TYPE, SCOPES, DataModel, Settings
from engine.suggest import suggest

routes = web.RouteTableDef()

NAME_CHARS = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIRROR_HOOKS = ("pair_relationship",)


async def _admin(request: web.Request) -> str:
    tenant_id = tenant(request)
    require_admin(await principal(request, tenant_id, None))
    return tenant_id


# -- tokens -------------------------------------------------------------------------------------


@routes.post("/v1/tenants/{tenant_id}/tokens")
@described(
    "Create an API token (admin key only); the secret is in this response only.",
    errors=(403, 413),
    status=201,
    body={
        "type": "object",
        "required": ["name", "scopes"],
        "properties": {
            "name": text(NAME_CHARS, 1),
            "scopes": {"type": "array", "minItems": 1, "items": {"enum": list(SCOPES)}},
            "subject": nullable(ENTITY_REF),
            "expires_at": nullable(
                {
                    "type": "string",
                    "format": "date-time",
                    "description": "In the future, and before the year 10000 in UTC.",
                }
            ),
        },
    },
)
async def create_token(request: web.Request) -> web.StreamResponse:
    """A new token; its secret is in this response and nowhere else."""
    svc = request.app[SERVICES]
    tenant_id = await _admin(request)
    body = await body_object(request)
    errors: list[FieldError] = []
    name = check_string(body.get("name"), ("name",), "name", NAME_CHARS, errors, minimum=1)
    scopes = _scopes(body.get("scopes"), errors)
    subject = _subject(body.get("subject"), errors)
    expires_at = _expires_at(body.get("expires_at"), errors, svc.relations.now_micros())
    if errors:
        raise Invalid(errors)
    assert name is not None
    token, secret = await svc.run(
        svc.relations.create_token, tenant_id, name, scopes, subject, expires_at
    )
    svc.writes.notify()
    return respond({"data": {**token_item(token), "token": secret}}, 201)


@routes.get("/v1/tenants/{tenant_id}/tokens")
@described("List the tenant's API tokens, never their secrets (admin key only).", errors=(403,))
async def list_tokens(request: web.Request) -> web.StreamResponse:
    """The tenant's tokens, oldest first, revoked ones included (never a secret or hash)."""
    svc = request.app[SERVICES]
    tenant_id = await _admin(request)
    found = await svc.run(svc.relations.tokens, tenant_id)
    return respond({"data": [token_item(t) for t in found]})


@routes.delete("/v1/tenants/{tenant_id}/tokens/{token_id}")
@described("Revoke an API token (admin key only).", errors=(403,), status=204)
async def revoke_token(request: web.Request) -> web.StreamResponse:
    """Revoke a token (404 when unknown or already revoked)."""
    svc = request.app[SERVICES]
    tenant_id = await _admin(request)
    await svc.run(svc.relations.revoke_token, tenant_id, request.match_info["token_id"])
    svc.writes.notify()
    return web.Response(status=204)


def _scopes(value: object, errors: list[FieldError]) -> list[str]:
    if value is None:
        errors.append(FieldError(("scopes",), "scopes is a required field"))
        return []
    if not isinstance(value, list):
        errors.append(FieldError(("scopes",), "scopes must be an array of strings"))
        return []
    if not value:
        errors.append(FieldError(("scopes",), "scopes must have at least 1 item"))
        return []
    scopes: list[str] = []
    for index, scope in enumerate(value):
        if not isinstance(scope, str):
            errors.append(FieldError(("scopes", index), f"scopes[{index}] must be a string"))
        elif scope not in SCOPES:
            errors.append(
                FieldError(
                    ("scopes", index),
                    f'unknown scope "{scope}": scopes are {", ".join(SCOPES)}',
                    value=scope,
                    suggestions=suggest(scope, SCOPES),
                )
            )
        elif scope not in scopes:
            scopes.append(scope)
    return scopes


def _subject(value: object, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(("subject",), "subject must be a string or null"))
        return None
    ref = entity_ref(value, ("subject",), errors)
    return None if ref is None else f"{ref[0]}:{ref[1]}"


def _expires_at(value: object, errors: list[FieldError], now: int) -> int | None:
    """An ISO-8601 timestamp with a timezone, in the future, as UTC microseconds."""
    if value is None:
        return None
    message = "expires_at must be an ISO-8601 timestamp with a timezone, e.g. 2030-01-31T12:00:00Z"
    if not isinstance(value, str):
        errors.append(FieldError(("expires_at",), message))
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(("expires_at",), message))
        return None
    if moment.tzinfo is None:
        errors.append(FieldError(("expires_at",), message))
        return None
    try:  # tokens show their times in UTC: 9999-12-31T23:00:00-02:00 has no such time
        moment.astimezone(UTC)
    except OverflowError:
        errors.append(FieldError(("expires_at",), "expires_at must be in the years 1-9999 UTC"))
        return None
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    if micros <= now:
        errors.append(FieldError(("expires_at",), "expires_at must be in the future"))
        return None
    return micros


# -- settings ----------------------------------------------------------------------------------


@routes.get("/v1/tenants/{tenant_id}/relations/settings")
@described("The tenant's relations settings (admin key only).", errors=(403,))
async def get_settings(request: web.Request) -> web.StreamResponse:
    """The tenant's relations settings and the snapshot they were read at."""
    svc = request.app[SERVICES]
    tenant_id = await _admin(request)
    value, token = await svc.run(svc.relations.settings_at_head, tenant_id)
    return respond({"data": asdict(value), "meta": {"snap_token": token}})


@routes.put("/v1/tenants/{tenant_id}/relations/settings")
@described(
    "Replace the tenant's relations settings; missing fields take defaults (admin key only).",
    errors=(403, 413),
    body={
        "type": "object",
        "properties": {
            "person_type": matching(ENTITY_TYPE),
            "require_schema_relation": {"type": "boolean"},
            "read_permission": ROLE_NAME,
            "write_permission": ROLE_NAME,
            "data_model": nullable(
                {
                    "type": "object",
                    "properties": {
                        "model": matching(ENTITY_TYPE),
                        "ref_type": matching(ENTITY_TYPE),
                        "mirror_hook": {"enum": list(MIRROR_HOOKS)},
                        "kinds": {
                            "type": "object",
                            "description": "kind: inverse kind; each inverse kind is a kind too.",
                            "minProperties": 1,
                            "propertyNames": ROLE_NAME,
                            "additionalProperties": {"type": "string"},
                        },
                    },
                }
            ),
        },
    },
)
async def put_settings(request: web.Request) -> web.StreamResponse:
    """Replace the settings as a whole: a field left out takes its default."""
    svc = request.app[SERVICES]
    tenant_id = await _admin(request)
    body = await body_object(request)
    value = _settings(body)
    token = await svc.run(svc.relations.put_settings, tenant_id, value)
    svc.writes.notify()
    return respond({"data": asdict(value), "meta": {"snap_token": token}})


def _settings(body: dict[str, Any]) -> Settings:
    defaults = Settings()
    errors: list[FieldError] = []
    person_type = _name(body, "person_type", ENTITY_TYPE, defaults.person_type, errors)
    require = body.get("require_schema_relation", defaults.require_schema_relation)
    if not isinstance(require, bool):
        errors.append(
            FieldError(("require_schema_relation",), "require_schema_relation must be a boolean")
        )
    read = _name(body, "read_permission", ROLE, defaults.read_permission, errors)
    write = _name(body, "write_permission", ROLE, defaults.write_permission, errors)
    model = _data_model(body["data_model"], errors) if "data_model" in body else DataModel()
    if errors:
        raise Invalid(errors)
    return Settings(person_type, bool(require), read, write, model)


def _name(
    body: dict[str, Any],
    key: str,
    pattern: re.Pattern[str],
    default: str,
    errors: list[FieldError],
    *,
    at: tuple[str, ...] = (),
) -> str:
    value = body.get(key, default)
    path = (*at, key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        errors.append(FieldError(path, f"{key} must match {pattern.pattern}"))
    return str(value)


def _data_model(value: object, errors: list[FieldError]) -> DataModel | None:
    """Null (no relationship records) or the record model; inverse kinds must be kinds too."""
    if value is None:
        return None
    at = ("data_model",)
    if not isinstance(value, dict):
        errors.append(FieldError(at, "data_model must be an object or null"))
        return None
    defaults = DataModel()
    model = _name(value, "model", ENTITY_TYPE, defaults.model, errors, at=at)
    ref_type = _name(value, "ref_type", ENTITY_TYPE, defaults.ref_type, errors, at=at)
    hook = value.get("mirror_hook", defaults.mirror_hook)
    if hook not in MIRROR_HOOKS:
        errors.append(
            FieldError(
                (*at, "mirror_hook"),
                f"mirror_hook must be one of the following values: {', '.join(MIRROR_HOOKS)}",
            )
        )
    kinds = value.get("kinds", defaults.kinds)
    if not isinstance(kinds, dict) or not kinds:
        errors.append(
            FieldError((*at, "kinds"), "kinds must be a non-empty object of kind: inverse kind")
        )
        kinds = {}
    for kind, inverse in kinds.items():
        path = (*at, "kinds", kind)
        if not ROLE.fullmatch(kind):
            errors.append(FieldError(path, f'kind "{kind}" must match [a-z][a-z0-9_]*'))
        if not isinstance(inverse, str):
            errors.append(FieldError(path, f"the inverse of {kind} must be a string"))
        elif inverse not in kinds:
            errors.append(
                FieldError(
                    path,
                    f'the inverse kind "{inverse}" of {kind} must be a kind as well',
                    value=inverse,
                    suggestions=suggest(inverse, kinds),
                )
            )
    return DataModel(model, ref_type, str(hook), dict(kinds))


# -- backup -------------------------------------------------------------------------------------


@routes.get("/v1/tenants/{tenant_id}/relations/backup")
@described(
    "The relations layer of the tenant as stored (admin key only): settings, relationship "
    "types and relation rows, read at one revision, and that revision's snap token.",
    errors=(403,),
)
async def read_backup(request: web.Request) -> web.StreamResponse:
    """Everything ``relations/restore`` takes, and ``meta.snap_token``: read the tuples at that
    token to have tuples and rows of one moment."""
    svc = request.app[SERVICES]
    tenant_id = await _admin(request)
    dumped, token = await svc.run(svc.relations.dump, tenant_id)
    return respond({"data": dumped.to_json(), "meta": {"snap_token": token}})


_BACKUP_ID = {"type": "string", "pattern": "^(rel|rt)-[A-Za-z0-9-]{1,64}$"}
_BACKUP_ROLE = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,254}$"}
_WHOLE = {"type": "integer", "minimum": 0}
_BACKUP_TYPE = {
    "type": "object",
    "required": ["id", "kind", "role", "source_type", "target_type", "created_at", "updated_at"],
    "properties": {
        "id": _BACKUP_ID,
        "kind": {"enum": ["person_to_co", "co_to_co"]},
        "role": _BACKUP_ROLE,
        "source_type": {"type": "string"},
        "target_type": {"type": "string"},
        "cardinality": {
            "enum": ["ONE_TO_ONE", "ONE_TO_MANY", "MANY_TO_ONE", "MANY_TO_MANY", None]
        },
        "description": {"type": ["string", "null"]},
        "bidirectional": {"type": "boolean"},
        "inverse_role": {"oneOf": [_BACKUP_ROLE, {"type": "null"}]},
        "inverse_id": {"oneOf": [_BACKUP_ID, {"type": "null"}]},
        "is_inverse": {"type": "boolean"},
        "created_at": _WHOLE,
        "updated_at": _WHOLE,
    },
}
_BACKUP_ROW = {
    "type": "object",
    "required": [
        "id",
        "entity_type",
        "entity_id",
        "relation",
        "subject_type",
        "subject_id",
        "type_id",
        "status",
        "created_at",
        "updated_at",
    ],
    "properties": {
        "id": _BACKUP_ID,
        "entity_type": {"type": "string"},
        "entity_id": {"type": "string"},
        "relation": _BACKUP_ROLE,
        "subject_type": {"type": "string"},
        "subject_id": {"type": "string"},
        "type_id": _BACKUP_ID,
        "metadata": {"type": ["object", "null"]},
        "position": {"oneOf": [_WHOLE, {"type": "null"}]},
        "pair_id": {"oneOf": [_BACKUP_ID, {"type": "null"}]},
        "is_mirror": {"type": "boolean"},
        "owned_by": {"type": ["string", "null"]},
        "status": {"type": "string"},
        "is_archived": {"type": "boolean"},
        "created_at": _WHOLE,
        "updated_at": _WHOLE,
    },
}


@routes.post("/v1/tenants/{tenant_id}/relations/restore")
@described(
    "Write back what relations/backup read (admin key only), in one write: settings, types "
    "and relation rows with their tuples; a pair is restored whole or not at all.",
    errors=(403, 409, 413),
    body={
        "type": "object",
        "properties": {
            "settings": {"type": ["object", "null"]},
            "types": {"type": "array", "items": _BACKUP_TYPE},
            "relations": {"type": "array", "items": _BACKUP_ROW},
            "object_types": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}
                    },
                },
            },
        },
    },
)
async def restore(request: web.Request) -> web.StreamResponse:
    """Restore a backup's part (types before the relations that name them)."""
    svc = request.app[SERVICES]
    tenant_id = await _admin(request)
    body = await body_object(request)
    raw_settings = body.get("settings")
    settings = None if raw_settings is None else _settings_object(raw_settings)
    parsed = backup.parse(body, settings)
    token = await svc.run(svc.relations.restore, tenant_id, parsed)
    svc.writes.notify()
    counts = {"types": len(parsed.types), "relations": len(parsed.rows)}
    return respond({"data": counts, "meta": {"snap_token": token}})


def _settings_object(value: object) -> Settings:
    if not isinstance(value, dict):
        raise Invalid.at(("settings",), "settings must be an object or null")
    return _settings(value)
