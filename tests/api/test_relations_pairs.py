"""The pair invariant on every raw path: a raw delete of one side of a bidirectional link takes
the other side and both metadata rows along, at the same revision; a raw write of one new side
is refused with a 400 naming the relations endpoint. After every change the check agrees with
the relations views."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from api.cli import main
from api.services import SERVICES
from tests.api.relations_support import check, new_tenant, read_tuples, register
from tests.api.support import tuple_json

SCHEMA = """
entity user {}
entity company {
    relation employs @contact
    relation partners @company
    permission staff = employs
}
entity contact {
    relation works_at @company
    relation spouse @contact
    permission job = works_at
    permission married = spouse
}
"""
ANN_HOOLI = "contact:ann#works_at@company:hooli"
HOOLI_ANN = "company:hooli#employs@contact:ann"


@pytest.fixture
def api(module_server: Any) -> Iterator[httpx.Client]:
    with module_server.client() as client:
        yield client


@pytest.fixture
def tenant(module_server: Any, api: httpx.Client) -> str:
    tenant = new_tenant(api, SCHEMA)
    register(module_server, tenant, "contact", "works_at", "company", inverse="employs")
    register(module_server, tenant, "contact", "spouse", "contact", inverse="spouse")
    return tenant


def post(api: httpx.Client, tenant: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(f"/v1/tenants/{tenant}/{path}", json=body)


def link(api: httpx.Client, tenant: str, source: str, role: str, target: str) -> dict[str, Any]:
    response = post(
        api,
        tenant,
        f"entities/{source}/relations",
        {"target_entity_id": target, "relation_type": role, "metadata": {"title": "CTO"}},
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def views(api: httpx.Client, tenant: str, entity: str) -> list[str]:
    response = api.get(f"/v1/tenants/{tenant}/entities/{entity}/relations")
    assert response.status_code == 200, response.text
    return sorted(
        f"{r['source_entity_id']}-{r['relation_type']}->{r['target_entity_id']}"
        for r in response.json()["data"]
    )


def state(api: httpx.Client, tenant: str, token: str = "") -> tuple[bool, bool, list[str]]:
    """(may ann do her job at hooli, is ann staff of hooli, what both views show)."""
    return (
        check(api, tenant, "contact:ann", "job", "company:hooli", token),
        check(api, tenant, "company:hooli", "staff", "contact:ann", token),
        views(api, tenant, "contact:ann") + views(api, tenant, "company:hooli"),
    )


def bundle_run(api: httpx.Client, tenant: str, operation: dict[str, list[str]]) -> httpx.Response:
    written = post(
        api, tenant, "bundle/write", {"bundles": [{"name": "b", "operations": [operation]}]}
    )
    assert written.status_code == 200, written.text
    return post(api, tenant, "data/run-bundle", {"name": "b", "arguments": {}})


def _filter(entity_type: str, ids: list[str], relation: str = "") -> dict[str, Any]:
    return {"entity": {"type": entity_type, "ids": ids}, "relation": relation, "subject": {}}


DELETES: dict[str, Callable[[httpx.Client, str], httpx.Response]] = {
    # The request from the issue, verbatim: one side, by Permify's relationships/delete.
    "relationships-delete-primary": lambda api, t: post(
        api,
        t,
        "relationships/delete",
        {
            "filter": {
                **_filter("contact", ["ann"], "works_at"),
                "subject": {"type": "company", "ids": ["hooli"]},
            }
        },
    ),
    "relationships-delete-mirror": lambda api, t: post(
        api, t, "relationships/delete", {"filter": _filter("company", ["hooli"], "employs")}
    ),
    "data-delete-by-subject": lambda api, t: post(
        api,
        t,
        "data/delete",
        {
            "tuple_filter": {"entity": {}, "subject": {"type": "contact", "ids": ["ann"]}},
            "attribute_filter": {},
        },
    ),
    "data-delete-whole-type": lambda api, t: post(
        api, t, "data/delete", {"tuple_filter": _filter("company", []), "attribute_filter": {}}
    ),
    "bundle-delete": lambda api, t: bundle_run(api, t, {"relationships_delete": [HOOLI_ANN]}),
}


@pytest.mark.parametrize("delete", list(DELETES.values()), ids=list(DELETES))
def test_a_raw_delete_of_either_side_removes_the_whole_pair(
    api: httpx.Client, tenant: str, delete: Callable[[httpx.Client, str], httpx.Response]
) -> None:
    link(api, tenant, "contact:ann", "works_at", "company:hooli")
    before = api.post(
        f"/v1/tenants/{tenant}/data/relationships/read",
        json={"filter": {"entity": {"type": "contact"}}},
    )
    linked_at = before.json()["x_snap_token"]
    assert state(api, tenant) == (
        True,
        True,
        ["contact:ann-works_at->company:hooli", "company:hooli-employs->contact:ann"],
    )
    response = delete(api, tenant)
    assert response.status_code == 200, response.text
    token = response.json()["snap_token"]
    assert state(api, tenant, token) == (False, False, [])
    assert read_tuples(api, tenant, "contact", token) == set()
    assert read_tuples(api, tenant, "company", token) == set()
    # One revision: the snapshot before the delete still sees both sides.
    assert state(api, tenant, linked_at)[:2] == (True, True)


def test_a_raw_delete_of_one_link_keeps_the_others_and_renumbers(
    api: httpx.Client, tenant: str
) -> None:
    link(api, tenant, "contact:ann", "works_at", "company:hooli")
    link(api, tenant, "contact:ann", "works_at", "company:initech")
    response = post(api, tenant, "relationships/delete", {"filter": _filter("company", ["hooli"])})
    assert response.status_code == 200, response.text
    rows = api.get(f"/v1/tenants/{tenant}/entities/contact:ann/relations").json()["data"]
    assert [(r["target_entity_id"], r["position"]) for r in rows] == [("company:initech", 1)]
    assert check(api, tenant, "company:initech", "staff", "contact:ann")
    assert not check(api, tenant, "company:hooli", "staff", "contact:ann")


def test_a_symmetric_pair_goes_as_a_whole(api: httpx.Client, tenant: str) -> None:
    link(api, tenant, "contact:ann", "spouse", "contact:bob")
    response = post(
        api, tenant, "relationships/delete", {"filter": _filter("contact", ["bob"], "spouse")}
    )
    assert response.status_code == 200, response.text
    assert not check(api, tenant, "contact:ann", "married", "contact:bob")
    assert views(api, tenant, "contact:ann") == views(api, tenant, "contact:bob") == []


def test_a_raw_pair_written_before_its_type_is_deleted_as_a_pair(
    module_server: Any, api: httpx.Client
) -> None:
    tenant = new_tenant(api, SCHEMA)
    body = {"metadata": {}, "tuples": [tuple_json(ANN_HOOLI), tuple_json(HOOLI_ANN)]}
    assert post(api, tenant, "data/write", body).status_code == 200
    register(module_server, tenant, "contact", "works_at", "company", inverse="employs")
    response = post(api, tenant, "relationships/delete", {"filter": _filter("contact", ["ann"])})
    assert response.status_code == 200, response.text
    assert not check(api, tenant, "company:hooli", "staff", "contact:ann")


WRITES: dict[str, Callable[[httpx.Client, str, str], httpx.Response]] = {
    "data-write": lambda api, t, text: post(
        api, t, "data/write", {"metadata": {}, "tuples": [tuple_json(text)]}
    ),
    "relationships-write": lambda api, t, text: post(
        api, t, "relationships/write", {"metadata": {}, "tuples": [tuple_json(text)]}
    ),
    "bundle-write": lambda api, t, text: bundle_run(api, t, {"relationships_write": [text]}),
}


@pytest.mark.parametrize("side", [ANN_HOOLI, HOOLI_ANN])
@pytest.mark.parametrize("write", list(WRITES.values()), ids=list(WRITES))
def test_a_raw_write_of_one_side_is_refused_naming_the_relations_endpoint(
    api: httpx.Client,
    tenant: str,
    write: Callable[[httpx.Client, str, str], httpx.Response],
    side: str,
) -> None:
    response = write(api, tenant, side)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    source, _, rest = side.partition("#")
    subject = rest.partition("@")[2]
    assert f"POST /v1/tenants/{tenant}/entities/{source}/relations" in message
    assert f'"target_entity_id": "{subject}"' in message
    assert state(api, tenant) == (False, False, [])


def test_raw_writes_follow_every_change_of_the_types(module_server: Any, api: httpx.Client) -> None:
    """The write hooks keep each tenant's pairs by the generation of its types: registering,
    deleting and registering again are each seen by the next raw write, and another tenant's
    types never are."""
    relations = module_server.app[SERVICES].relations
    tenant, other = new_tenant(api, SCHEMA), new_tenant(api, SCHEMA)

    def raw(t: str, text: str) -> int:
        body = {"metadata": {}, "tuples": [tuple_json(text)]}
        return post(api, t, "data/write", body).status_code

    assert raw(tenant, "contact:bob#spouse@contact:al") == 200  # no type yet
    type_id = register(module_server, tenant, "contact", "works_at", "company", inverse="employs")
    assert raw(tenant, "contact:cy#works_at@company:hooli") == 400
    assert raw(other, "contact:cy#spouse@contact:al") == 200  # not the other tenant's types
    assert raw(other, "contact:cy#works_at@company:hooli") == 200
    relations.delete_type(tenant, type_id)
    assert raw(tenant, "contact:cy#works_at@company:hooli") == 200
    register(module_server, tenant, "contact", "spouse", "contact", inverse="spouse")
    assert raw(tenant, "contact:dee#spouse@contact:cy") == 400
    assert raw(tenant, "contact:bob#spouse@contact:al") == 200  # written before: passes
    register(module_server, other, "company", "partners", "company", inverse="partners")
    assert raw(other, "company:a#partners@company:b") == 400


def test_rewriting_an_existing_side_changes_nothing_and_passes(
    api: httpx.Client, tenant: str
) -> None:
    link(api, tenant, "contact:ann", "works_at", "company:hooli")
    body = {"metadata": {}, "tuples": [tuple_json(ANN_HOOLI), tuple_json(HOOLI_ANN)]}
    assert post(api, tenant, "data/write", body).status_code == 200
    assert state(api, tenant)[:2] == (True, True)
    assert len(state(api, tenant)[2]) == 2


def test_deleting_one_side_while_writing_the_other_is_refused(
    api: httpx.Client, tenant: str
) -> None:
    link(api, tenant, "contact:ann", "works_at", "company:hooli")
    response = bundle_run(
        api, tenant, {"relationships_write": [HOOLI_ANN], "relationships_delete": [ANN_HOOLI]}
    )
    assert response.status_code == 400, response.text
    assert "delete both or neither" in response.json()["message"]
    assert state(api, tenant)[:2] == (True, True)


def test_tuples_of_other_relations_write_and_delete_as_before(
    api: httpx.Client, tenant: str
) -> None:
    body = {"metadata": {}, "tuples": [tuple_json("company:hooli#partners@company:initech")]}
    assert post(api, tenant, "data/write", body).status_code == 200
    response = post(api, tenant, "relationships/delete", {"filter": _filter("company", ["hooli"])})
    assert response.status_code == 200, response.text
    assert read_tuples(api, tenant, "company") == set()


def test_an_import_of_one_side_stops_at_that_line_and_writes_no_half_pair(
    module_server: Any, api: httpx.Client, tenant: str, tmp_path: Any
) -> None:
    data = tmp_path / "half.ndjson"
    data.write_text(
        '{"tuple": "company:hooli#partners@company:initech"}\n'
        + json.dumps({"tuple": ANN_HOOLI})
        + "\n"
    )
    where = ["--url", module_server.url, "--tenant", tenant]
    result = CliRunner().invoke(main, ["import", str(data), "--batch-size", "1", *where])
    assert result.exit_code == 1
    assert f"{data}:2: " in result.stderr and "entities/contact:ann/relations" in result.stderr
    assert state(api, tenant) == (False, False, [])
    assert read_tuples(api, tenant, "company") == {"company:hooli#partners@company:initech"}
