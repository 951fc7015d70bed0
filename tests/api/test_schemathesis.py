"""Schemathesis against a real server, over the whole OpenAPI document it serves: every phase
(examples, coverage, fuzzing, stateful) and every check, including "a request the document
calls valid was rejected" (``positive_data_acceptance``) and "not a server error".

The requests are meaningful rather than random: every ``{tenant_id}`` is a tenant the test
creates first, with a schema and tuples (a random tenant id would only ever meet 404), the seed's
verbatim routes (``/core``, ``/xapi2``) serve the default tenant, which gets the same schema, and
names, ids and entity references are often drawn from that schema (``DICTIONARIES``).
``make test`` runs a few examples per operation; ``STONETOWN_SCHEMATHESIS_EXAMPLES=500`` runs a
long campaign (the coverage phase too).

What is left out or excused, and why (each also where the code does it):

* ``POST /v1/tenants/{tenant_id}/watch`` is never called: it is a stream that ends only when the
  client leaves, so every call would run into the request timeout (tests/api/test_watch.py
  covers it). ``GET /openapi.json`` is not called either: schemathesis never calls the document
  it was loaded from (tests/api/test_meta.py checks it).
* ``DELETE /v1/tenants/{id}`` never names the tenants the run works in (it may delete any
  other, including tenants the run created): deleting them would turn the rest into 404s. For
  the same reason random relations settings are written to a tenant of their own.
* A bundle generated as valid declares the arguments its strings use (``declare_arguments``):
  that a string's ``{{.name}}`` is declared in the same bundle relates two values of a request,
  which JSON Schema cannot say, and without it nearly no generated bundle could be written.
* The stateful phase sends valid requests only, and so do the fuzzing and coverage phases to
  ``GET``/``DELETE`` of one relationship type, relationship, record or token: see
  ``config_text`` for why.
* hypothesis's ``data_too_large`` health check is off: it judges the generator (bundle writes
  are big), not the server, and every case made is still sent and checked.
* A rejected valid request passes only where JSON Schema cannot say why it is invalid: each
  entry of ``EXCUSES`` names such a rule (what the server checks against its own state, such
  as the tenant's schema or an issued token, or between two values of one request) and says
  exactly which answers it excuses. So does ``MISLABELLED``, for a "negative" case that
  schemathesis itself describes as positive. Nothing else is excused: every other check, and
  every other 400 to a valid request, fails the test.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import schemathesis
from schemathesis import engine as st_engine
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import AcceptedNegativeData, Failure
from schemathesis.engine import events
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.hooks import HookContext
from schemathesis.openapi.checks import RejectedPositiveData

from api.models import BUNDLE_FORMS
from engine.relations.model import DEFAULT_KINDS
from storage.base import DEFAULT_TENANT
from tests.api.conftest import Server
from tests.api.relations_support import CONTACT_SCHEMA

#: The tenant every generated ``{tenant_id}`` names,
TENANT = "fuzzed"
#: but for the settings' replacement: random settings (no record model, other permissions) would
#: turn much of the rest of the run into 404s.
SETTINGS_TENANT = "fuzzed-settings"
SETTINGS = "PUT /v1/tenants/{tenant_id}/relations/settings"
#: Examples per operation and phase: few in ``make test``, many in a campaign.
EXAMPLES = int(os.environ.get("STONETOWN_SCHEMATHESIS_EXAMPLES", "0"))
QUICK_EXAMPLES = 5
#: The same seed gives the same requests (up to the ids the server makes up).
SEED = int(os.environ.get("STONETOWN_SCHEMATHESIS_SEED", "1"))
WATCH = "/v1/tenants/{tenant_id}/watch"
FREE_IDS = r"^(GET|DELETE) .*\{(record_id|relationship_type_id|relationship_id|token_id)\}$"

#: Permify's side (doc: relations, attributes, a rule) and the relations layer's (contact, with
#: a relation per record kind and the default settings' view/edit permissions).
SCHEMA = (
    CONTACT_SCHEMA
    + """
entity doc {
    relation owner @user
    relation viewer @user @doc#viewer
    attribute public boolean
    attribute score double
    attribute tags string[]
    permission edit = owner
    permission view = owner or viewer or public or high(score)
}
rule high(score double) {
    score > 0.5
}
"""
)
TUPLES = [
    {
        "entity": {"type": "doc", "id": "1"},
        "relation": "owner",
        "subject": {"type": "user", "id": "1"},
    },
    {
        "entity": {"type": "doc", "id": "2"},
        "relation": "viewer",
        "subject": {"type": "doc", "id": "1", "relation": "viewer"},
    },
    {
        "entity": {"type": "contact", "id": "1"},
        "relation": "knows",
        "subject": {"type": "contact", "id": "2"},
    },
]

#: Values the generated requests often take instead of random ones, so that many of them name
#: what the tenant has: (dictionary, its values, the places it fills).
DICTIONARIES: list[tuple[str, list[str], list[str]]] = [
    (
        "types",
        ["doc", "user", "contact"],
        [
            "body.entity.type",
            "body.subject.type",
            "body.entity_type",
            "body.subject_reference.type",
            "body.items[*].entity.type",
            "body.items[*].subject.type",
            "body.tuples[*].entity.type",
            "body.tuples[*].subject.type",
            "body.attributes[*].entity.type",
            "body.filter.entity.type",
            "body.tuple_filter.entity.type",
        ],
    ),
    (
        "ids",
        ["1", "2"],
        [
            "body.entity.id",
            "body.subject.id",
            "body.items[*].entity.id",
            "body.items[*].subject.id",
            "body.tuples[*].entity.id",
            "body.tuples[*].subject.id",
            "body.attributes[*].entity.id",
        ],
    ),
    (
        "members",
        ["view", "edit", "owner", "viewer", "knows", "public", "score", "tags", "friend"],
        [
            "body.permission",
            "body.relation",
            "body.items[*].permission",
            "body.tuples[*].relation",
            "body.attributes[*].attribute",
            "body.subject.relation",
            "body.relation_type",
            "body.role",
        ],
    ),
    # Sources and targets differ, so that few requests relate a thing to itself.
    ("sources", ["contact:1", "doc:1", "user:1"], ["path.entity", "body.subject"]),
    ("targets", ["contact:2", "contact:3", "doc:2"], ["body.target_entity_id"]),
    ("parents", ["1", "2"], ["body.parent_id", "body.sourceId"]),
    ("children", ["3", "4"], ["body.target_id", "body.targetId"]),
    ("kinds", list(DEFAULT_KINDS), ["body.kind"]),
]
#: How often a bound place takes a dictionary value.
PROBABILITY = 0.75
#: ``{{.name}}`` in a bundle's string.
ARGUMENT = re.compile(r"\{\{[ \t\r\n]*\.([A-Za-z_][A-Za-z0-9_]*)[ \t\r\n]*\}\}")


@dataclass(frozen=True, slots=True)
class Excuse:
    """One rule JSON Schema cannot state, and the answers to valid requests it explains.

    A rejection is excused when its operation matches ``operation`` and either its Permify
    reason is one of ``reasons``, or every message of a Strapi error matches one of
    ``messages``, or ``request`` finds the broken rule in the request (the ``Case``) itself."""

    why: str
    operation: str
    reasons: frozenset[str] = frozenset()
    messages: tuple[str, ...] = ()
    request: Callable[[Any], bool] | None = None


def _expired(case: Any) -> bool:
    try:
        moment = datetime.fromisoformat(case.body["expires_at"]).astimezone(UTC)
    except (ValueError, OverflowError):
        return True
    return moment <= datetime.now(UTC)


def _dangling_inverse(case: Any) -> bool:
    kinds = case.body["data_model"]["kinds"]
    return any(inverse not in kinds for inverse in kinds.values())


def _double_past_the_range(body: Any) -> bool:
    """Whether an attribute string holds a double that overflows (``1e999``; ``inf`` is fine)."""
    for bundle in body["bundles"]:
        for operation in bundle.get("operations", []):
            for key in ("attributes_write", "attributes_delete"):
                for text in operation.get(key, []):
                    value_type, _, value = text.partition("|")[2].partition(":")
                    if not value_type.startswith("double"):
                        continue
                    for element in value.split(",") if value_type.endswith("[]") else [value]:
                        if _overflows(element.strip()):
                            return True
    return False


def _overflows(text: str) -> bool:
    try:
        return math.isinf(float(text)) and "inf" not in text.lower()
    except ValueError:
        return False


def _duplicate_bundle_names(body: Any) -> bool:
    names = [bundle["name"] for bundle in body["bundles"]]
    return len(names) != len(set(names))


PERMIFY = r"^(POST|PATCH) /v1/tenants/\{tenant_id\}/"
ENTITY_RELATIONS = (
    r"^(POST|PUT) (/v1/tenants/\{tenant_id\}|/core/api/v1)/entities/\{entity\}/relations$"
)
EXCUSES = (
    Excuse(
        "The schema text is a language (dsl/grammar.lark): that it compiles is no pattern.",
        PERMIFY + r"schemas/(write|partial-write)$",
        reasons=frozenset({"ERROR_CODE_SCHEMA_COMPILE", "ERROR_CODE_SCHEMA_PARSE"}),
    ),
    Excuse(
        "A partial write names entities and members of the schema version it edits, and adds "
        "only members it does not have yet.",
        PERMIFY + r"schemas/partial-write$",
        reasons=frozenset(
            {
                "ERROR_CODE_ENTITY_STATEMENT_NOT_FOUND",
                "ERROR_CODE_REFERENCE_NOT_FOUND",
                "ERROR_CODE_ALREADY_EXIST",
            }
        ),
    ),
    Excuse(
        "Entity types, relations, permissions and attributes must be the tenant's schema's, and "
        "fit it (a tuple's subject type, an attribute's value type, a recursion's depth).",
        PERMIFY + r"(permissions|data|relationships|bundle)/",
        reasons=frozenset(
            {
                "ERROR_CODE_ENTITY_TYPE_NOT_FOUND",
                "ERROR_CODE_ENTITY_DEFINITION_NOT_FOUND",
                "ERROR_CODE_PERMISSION_NOT_FOUND",
                "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND",
                "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND",
                "ERROR_CODE_ATTRIBUTE_DEFINITION_NOT_FOUND",
                "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH",
                "ERROR_CODE_DEPTH_NOT_ENOUGH",
                # A check of a non-boolean attribute; a rule that cannot evaluate on the data.
                "ERROR_CODE_EXECUTION",
            }
        ),
    ),
    Excuse(
        "Running a bundle gives exactly the arguments the stored bundle declares, with values "
        "that make each of its strings valid.",
        PERMIFY + r"data/run-bundle$",
        reasons=frozenset({"ERROR_CODE_INVALID_ARGUMENT", "ERROR_CODE_MISSING_ARGUMENT"}),
    ),
    Excuse(
        "A snap token or continuous token is one this server issued (it names its store and "
        "query): any other string is refused.",
        r"^(POST|PATCH) /v1/",
        reasons=frozenset({"ERROR_CODE_INVALID_CONTINUOUS_TOKEN"}),
    ),
    Excuse(
        "An AuthZEN search names the tenant schema's types and actions (and declared "
        "properties fit their attributes), and a page token is one this server issued for the "
        "same request.",
        r"^POST (/v1/tenants/\{tenant_id\})?/access/v1/search/",
        reasons=frozenset(
            {
                "ERROR_CODE_ENTITY_TYPE_NOT_FOUND",
                "ERROR_CODE_PERMISSION_NOT_FOUND",
                "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH",
                "ERROR_CODE_DEPTH_NOT_ENOUGH",
                "ERROR_CODE_EXECUTION",
                "ERROR_CODE_INVALID_CONTINUOUS_TOKEN",
            }
        ),
    ),
    Excuse(
        "A bundle's names are unique in one write, and a double in a string must not overflow "
        "(1e999): between items, and a numeric range in text.",
        PERMIFY + r"bundle/write$",
        request=lambda case: (
            _duplicate_bundle_names(case.body) or _double_past_the_range(case.body)
        ),
    ),
    Excuse(
        "expires_at is in the future (and has a UTC time): a bound that moves with the clock.",
        r"^POST /v1/tenants/\{tenant_id\}/tokens$",
        request=_expired,
    ),
    Excuse(
        "Every inverse kind of the data model is one of its kinds: values must be keys.",
        r"^PUT /v1/tenants/\{tenant_id\}/relations/settings$",
        request=_dangling_inverse,
    ),
    Excuse(
        "An entity is not related to itself: the path and the body name different entities, "
        "and so do a relationship's source and target.",
        ENTITY_RELATIONS + r"|^POST /v1/tenants/\{tenant_id\}/relationships$",
        messages=(r"^an (entity|object) cannot be related to itself$",),
    ),
    Excuse(
        "Keyset paging: `after` names a row of the list, is not given with `offset`, and needs "
        "the list sorted by creation (a value and two values of one request).",
        r"^GET ",
        messages=(
            r"^invalid cursor: after must be the id of a row in this list$",
            r"^after and offset cannot be used together$",
            r"^after needs a list sorted by ",
        ),
    ),
    Excuse(
        "Relations use the types registered for the tenant, and the roles its schema has.",
        ENTITY_RELATIONS,
        messages=(r'^relation_type "[^"]*" is not registered for ', r'^Unknown role "'),
    ),
    Excuse(
        "A path without a tenant serves the tenant of the API token sent; the run sends the "
        "admin key, which belongs to no tenant.",
        r"^[A-Z]+ /(relationship-types|relationships|custom-objects/types)(/|$)",
        messages=(r" takes its tenant from an API token, and the admin key belongs to no ",),
    ),
    Excuse(
        "A new object type's relations name entity types (and their relations) of the tenant's "
        "schema.",
        r"^POST (/v1/tenants/\{tenant_id\})?/custom-objects/types$",
        messages=(r"^unknown entity `[^`]*` in subject type ", r"^entity `[^`]*` has no relation "),
    ),
    Excuse(
        "A restore holds together with the tenant's schema and what is stored: its types name "
        "entity types of the schema and known inverses, its rows name known types, fit the "
        "schema and bring their pairs.",
        r"^POST /v1/tenants/\{tenant_id\}/relations/restore$",
        messages=(
            r"^types\.\d+: .* is not an entity type of the current schema",
            r"^types\.\d+: its inverse .* is not known$",
            r"^relations: an id is given twice$",
            r"^relations\.\d+ \([^)]*\): ",
        ),
    ),
    Excuse(
        "A record's kind is one of the tenant's data model (its settings), and its two contacts "
        "differ.",
        r"xapi2/data/relationship$",
        messages=(
            r"^kind must be one of the following values: ",
            r"^target_id must be a different contact than parent_id$",
        ),
    ),
)


def _errors_of(response: Any) -> tuple[str | None, list[str]]:
    """(Permify reason or None, every message) of an error body."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None, []
    if not isinstance(body, dict):
        return None, []
    if isinstance(body.get("error"), dict):  # Strapi's envelope
        error = body["error"]
        found = [str(e.get("message", "")) for e in error.get("details", {}).get("errors", [])]
        return None, found or [str(error.get("message", ""))]
    details = body.get("details") or [{}]
    return details[0].get("reason"), [str(body.get("message", ""))]


#: schemathesis sometimes reports a valid request as a negative one: the case's own description
#: says no part of it was made invalid ("Invalid component: positive test case"). Seen in cases
#: whose values came from earlier responses or the fixed tenant.
MISLABELLED = Excuse(
    "schemathesis labelled a valid request negative (its description: positive test case).",
    r"",
)


def excused(failure: Failure, case: Any, response: Any) -> Excuse | None:
    """The entry that explains ``failure``, if any: a 400 to a valid request that ``EXCUSES``
    explains, or a "negative" request that schemathesis itself describes as positive."""
    if isinstance(failure, AcceptedNegativeData):
        data = case.meta.phase.data if case.meta is not None else None
        if getattr(data, "description", None) == "Positive test case":
            return MISLABELLED
        return None
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 400:
        return None
    reason, messages = _errors_of(response)
    applicable = [e for e in EXCUSES if re.search(e.operation, failure.operation or "")]
    for excuse in applicable:
        if reason in excuse.reasons or (
            excuse.request is not None and _holds(excuse.request, case)
        ):
            return excuse
    # A Strapi error lists every problem: each must be one an excuse explains.
    explained = [
        next((e for e in applicable if any(re.search(p, m) for p in e.messages)), None)
        for m in messages
    ]
    if reason is None and explained and all(explained):
        return explained[0]
    return None


def _holds(request: Callable[[Any], bool], case: Any) -> bool:
    """Whether the request breaks the rule; a body of another shape does not (it is one the
    document should have refused)."""
    try:
        return request(case)
    except (LookupError, TypeError, AttributeError, ValueError):
        return False


FIXTURES = (TENANT, SETTINGS_TENANT, DEFAULT_TENANT)


def spare_the_fixtures(case: Any) -> None:
    """``DELETE /v1/tenants/{id}`` names another tenant than the run's (see the module's doc):
    just before the call, as the stateful phase fills ``id`` from listed tenants."""
    named = unquote(str((case.path_parameters or {}).get("id")))
    if case.operation.label == "DELETE /v1/tenants/{id}" and named in FIXTURES:
        case.path_parameters["id"] = "spared"


def declare_arguments(case: Any) -> Any:
    """A valid bundle declares every ``{{.name}}`` its strings use (see the module's doc)."""
    meta = case.meta
    if not (
        case.operation.path.endswith("/bundle/write")
        and meta is not None
        and meta.generation.mode.is_positive
        and isinstance(case.body, dict)
    ):
        return case
    for bundle in case.body.get("bundles", []):
        used = {
            name
            for operation in bundle.get("operations", [])
            for strings in (operation.get(key, []) for key in BUNDLE_FORMS)
            for text in strings
            for name in ARGUMENT.findall(text)
        }
        bundle["arguments"] = list(dict.fromkeys([*bundle.get("arguments", []), *sorted(used)]))
    return case


def config(examples: int, *, coverage: bool) -> SchemathesisConfig:
    """What the run generates and checks."""
    return SchemathesisConfig.from_str(config_text(examples, coverage=coverage))


def config_text(examples: int, *, coverage: bool) -> str:
    """The run's configuration as ``st --config-file`` takes it (the CLI loads the hooks of
    ``run`` with ``SCHEMATHESIS_HOOKS``)."""
    lines = [
        "workers = 1",
        "request-timeout = 30",
        # A bundle write holds lists of lists of strings with long patterns: hypothesis's
        # generator-side size check trips on it at times (every case made is still sent).
        'suppress-health-check = ["data_too_large"]',
        "[generation]",
        f"max-examples = {examples}",
        'database = "none"',
        "[checks]",
        "enabled = true",
        "[phases.coverage]",
        f"enabled = {str(coverage).lower()}",
        "[parameters]",
        f'"path.tenant_id" = "{TENANT}"',
    ]
    for name, _, places in DICTIONARIES:
        lines += [
            f'"{place}" = {{ dictionary = "{name}", probability = {PROBABILITY} }}'
            for place in places
        ]
    for name, values, _ in DICTIONARIES:
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
    lines += [
        # Links and the fixed tenant replace generated values after a step is built, so a
        # "negative" stateful step can go out valid (schemathesis then says: "Invalid component:
        # positive test case"); the other phases send the negative cases.
        "[phases.stateful.generation]",
        'mode = "positive"',
        "[[operations]]",
        f'include-path = "{WATCH}"',
        "enabled = false",
        # Their only parameters are the run's fixed tenant and an id of which every string is
        # one (unknown: 404), so there is no invalid request to generate (hypothesis would give
        # up: "too many generated examples are filtered out").
        "[[operations]]",
        f"include-name-regex = {json.dumps(FREE_IDS)}",
        "[operations.generation]",
        'mode = "positive"',
        "[[operations]]",
        f'include-name = "{SETTINGS}"',
        "[operations.parameters]",
        f'"path.tenant_id" = "{SETTINGS_TENANT}"',
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Outcome:
    """What a run did: cases, answers by status, operations called, failures, errors, excuses."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    operations: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    excused: Counter[str] = field(default_factory=Counter)


def _record(outcome: Outcome, recorder: ScenarioRecorder) -> None:
    outcome.cases += len(recorder.cases)
    for case_id, interaction in recorder.interactions.items():
        if interaction.response is not None:
            outcome.statuses[interaction.response.status_code] += 1
            outcome.operations.add(recorder.cases[case_id].value.operation.label)
    for case_id, checks in recorder.checks.items():
        interaction = recorder.interactions.get(case_id)
        response = interaction.response if interaction is not None else None
        answer = "" if response is None else f"{response.status_code} {response.content[:500]!r}"
        for check in checks:
            if check.failure_info is not None:
                failure = check.failure_info.failure
                outcome.failures.append(
                    f"{check.name}: {failure.operation}: {failure.title}\n{failure.message}\n"
                    f"{check.failure_info.code_sample}\n-> {answer}"
                )


def run(base_url: str, examples: int, *, coverage: bool, seed: int) -> Outcome:
    """Load the server's document and run schemathesis on it; what happened, counted."""
    settings = config(examples, coverage=coverage)
    settings.update(seed=seed, max_failures=None)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=settings)
    outcome = Outcome()

    @schema.hook("map_case")
    def shape(context: HookContext, case: Any) -> Any:
        del context
        return declare_arguments(case)

    @schema.hook("filter_failure")
    def excuse(context: HookContext, failure: Failure, case: Any, response: Any) -> bool:
        del context
        entry = excused(failure, case, response)
        if entry is not None:
            outcome.excused[entry.why] += 1
        return entry is None

    def spare(context: HookContext, case: Any, kwargs: dict[str, Any]) -> None:
        del context, kwargs
        spare_the_fixtures(case)

    # schemathesis has before_call hooks only for the whole process: for this run, then gone.
    schemathesis.hook("before_call")(spare)
    try:
        for event in st_engine.from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
                _record(outcome, event.recorder)
            elif isinstance(event, events.NonFatalError):
                outcome.errors.append(f"{event.label}: {event.info.format()}")
            elif isinstance(event, events.FatalError):
                outcome.errors.append(f"fatal: {event.exception!r}")
    finally:
        schemathesis.hooks.unregister(spare)
    return outcome


def set_up(client: httpx.Client) -> None:
    """The tenant the run works in, and the default tenant the verbatim routes serve."""
    for tenant in (TENANT, SETTINGS_TENANT):
        assert client.post("/v1/tenants/create", json={"id": tenant}).status_code == 200
    for tenant in (TENANT, SETTINGS_TENANT, DEFAULT_TENANT):
        base = f"/v1/tenants/{tenant}"
        assert client.post(f"{base}/schemas/write", json={"schema": SCHEMA}).is_success
        assert client.post(f"{base}/data/write", json={"tuples": TUPLES}).is_success


@pytest.fixture
def fuzzed(server: Server) -> Iterator[str]:
    with server.client() as client:
        set_up(client)
        yield server.url
        # The run left its tenant in place (else most of it was 404s).
        assert client.post(f"/v1/tenants/{TENANT}/schemas/read", json={}).status_code == 200


def test_schemathesis_finds_nothing_in_the_whole_document(fuzzed: str) -> None:
    campaign = EXAMPLES > 0
    outcome = run(fuzzed, EXAMPLES or QUICK_EXAMPLES, coverage=campaign, seed=SEED)
    print(  # shown with -s: what a campaign did
        f"schemathesis: {outcome.cases} cases, {len(outcome.operations)} operations, "
        f"statuses {dict(sorted(outcome.statuses.items()))}, {len(outcome.failures)} failures, "
        f"{len(outcome.errors)} errors, excused {dict(outcome.excused)}"
    )
    assert not outcome.errors, "\n\n".join(outcome.errors)
    assert not outcome.failures, f"{len(outcome.failures)} failures:\n\n" + "\n\n".join(
        outcome.failures[:20]
    )
    with httpx.Client(base_url=fuzzed) as client:
        documented = client.get("/openapi.json").json()["paths"]
    every = {f"{method.upper()} {path}" for path, ops in documented.items() for method in ops}
    # schemathesis never calls the document it was loaded from (tests/api/test_meta.py does).
    assert outcome.operations == every - {f"POST {WATCH}", "GET /openapi.json"}
    assert sum(n for status, n in outcome.statuses.items() if 200 <= status < 300) > 0


# -- what the runs found, kept from coming back --------------------------------------------------


@pytest.mark.parametrize(
    "expires_at",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00"],
    ids=["after", "before"],
)
def test_a_token_expiry_without_a_utc_time_is_a_400_not_a_stored_500(
    server: Server, expires_at: str
) -> None:
    with server.client() as client:
        body = {"name": "far", "scopes": ["*"], "expires_at": expires_at}
        response = client.post(f"/v1/tenants/{DEFAULT_TENANT}/tokens", json=body)
        assert response.status_code == 400, response.text
        [error] = response.json()["error"]["details"]["errors"]
        assert error == {
            "path": ["expires_at"],
            "message": "expires_at must be in the years 1-9999 UTC",
            "name": "ValidationError",
        }
        assert client.get(f"/v1/tenants/{DEFAULT_TENANT}/tokens").json() == {"data": []}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "relationship-types",
            {"kind": "co_to_co", "role": "knows"}
            | {"parentCustomObjectType": "contact", "childCustomObjectType": "contact"},
        ),
        ("GET", "entities/contact:1/relations", None),
        ("PUT", "entities/contact:1/relations", {"data": {}}),
    ],
    ids=["register", "list", "connect"],
)
def test_the_relations_routes_of_a_tenant_without_a_schema_answer_404(
    server: Server, method: str, path: str, body: Any
) -> None:
    """As the Permify routes do (a missing prerequisite, not a bad request): a valid request."""
    with server.client() as client:
        assert client.post("/v1/tenants/create", json={"id": "bare"}).status_code == 200
        response = client.request(method, f"/v1/tenants/bare/{path}", json=body)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["message"] == (
        "tenant bare has no authorization schema yet: write one first"
    )
