"""Data over HTTP: write tuples and attributes (validated against the schema, all or nothing),
read them by filter a page at a time at a snap token, and delete them by filter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from api import models as m
from tests.api.conftest import Server, shaped
from tests.api.support import tuple_json, tuple_text

SCHEMA = """
entity user {}

entity group {
    relation member @user @group#member
}

entity doc {
    relation owner @user
    relation viewer @user @group#member
    relation parent @doc
    attribute public boolean
    attribute flags boolean[]
    attribute title string
    attribute tags string[]
    attribute level integer
    attribute levels integer[]
    attribute score double
    attribute scores double[]
    permission view = owner or viewer or parent.view
}
"""
ANY = "type.googleapis.com/base.v1."


def attr(entity: str, name: str, kind: str, data: Any) -> dict[str, Any]:
    entity_type, entity_id = entity.split(":")
    return {
        "entity": {"type": entity_type, "id": entity_id},
        "attribute": name,
        "value": {"@type": ANY + kind, "data": data},
    }


def _error(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = shaped(m.ErrorResponse, response.json())
    assert body["details"][0]["reason"] == reason, body
    return body


def _fields(body: dict[str, Any]) -> list[str]:
    return [v["field"] for v in body["details"][1]["field_violations"]]


class Api:
    """The data endpoints of one tenant, returning plain values."""

    def __init__(self, client: httpx.Client, tenant: str = "t1") -> None:
        self.client = client
        self.base = f"/v1/tenants/{tenant}"

    def post(self, endpoint: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(f"{self.base}/{endpoint}", json=body)

    def schema(self, text: str = SCHEMA) -> str:
        response = self.post("schemas/write", {"schema": text})
        assert response.status_code == 200, response.text
        version: str = response.json()["schema_version"]
        return version

    def write(self, *tuples: str, attributes: list[dict[str, Any]] | None = None) -> str:
        body = {"tuples": [tuple_json(t) for t in tuples], "attributes": attributes or []}
        response = self.post("data/write", body)
        assert response.status_code == 200, response.text
        token: str = shaped(m.SnapTokenResponse, response.json())["snap_token"]
        assert token
        return token

    def delete(self, endpoint: str, body: dict[str, Any]) -> str:
        response = self.post(endpoint, body)
        assert response.status_code == 200, response.text
        token: str = shaped(m.SnapTokenResponse, response.json())["snap_token"]
        return token

    def _pages(
        self,
        route: str,
        answer: type[m.Out],
        items: str,
        flt: dict[str, Any],
        *,
        token: str,
        page_size: int | None,
    ) -> Iterator[list[Any]]:
        """Every page of a read route, following ``continuous_token``, each checked against
        the ``answer`` model; yields the page's ``items``."""
        cursor = ""
        while True:
            body: dict[str, Any] = {
                "metadata": {"snap_token": token},
                "filter": flt,
                "continuous_token": cursor,
            }
            if page_size is not None:
                body["page_size"] = page_size
            response = self.post(route, body)
            assert response.status_code == 200, response.text
            page = shaped(answer, response.json())
            yield page[items]
            cursor = page["continuous_token"]
            if not cursor:
                return

    def tuple_pages(
        self, flt: dict[str, Any], *, token: str = "", page_size: int | None = None
    ) -> Iterator[list[str]]:
        pages = self._pages(
            "data/relationships/read",
            m.RelationshipsReadResponse,
            "tuples",
            flt,
            token=token,
            page_size=page_size,
        )
        for page in pages:
            yield [tuple_text(t) for t in page]

    def tuples(self, flt: dict[str, Any] | None = None, *, token: str = "") -> set[str]:
        pages = list(self.tuple_pages(flt or {}, token=token, page_size=1000))
        assert len(pages) == 1
        assert len(pages[0]) == len(set(pages[0]))
        return set(pages[0])

    def attribute_pages(
        self, flt: dict[str, Any], *, token: str = "", page_size: int | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        return self._pages(
            "data/attributes/read",
            m.AttributesReadResponse,
            "attributes",
            flt,
            token=token,
            page_size=page_size,
        )

    def attributes(self, flt: dict[str, Any] | None = None, *, token: str = "") -> dict[str, Any]:
        """``{"doc:1$level": data}`` for every matching attribute."""
        pages = list(self.attribute_pages(flt or {}, token=token, page_size=1000))
        assert len(pages) == 1
        out = {}
        for a in pages[0]:
            key = f"{a['entity']['type']}:{a['entity']['id']}${a['attribute']}"
            assert key not in out
            out[key] = a["value"]["data"]
        return out


@pytest.fixture
def api(client: httpx.Client) -> Api:
    """Tenant t1 with SCHEMA as its head."""
    data = Api(client)
    data.schema()
    return data


# -- write ----------------------------------------------------------------------------------


def test_write_returns_a_snap_token_at_which_the_tuples_are_read_back(api: Api) -> None:
    before = api.tuples()
    token = api.write("doc:1#owner@user:alice", "doc:1#viewer@group:eng#member")
    assert before == set()
    expected = {"doc:1#owner@user:alice", "doc:1#viewer@group:eng#member"}
    assert api.tuples(token=token) == expected
    assert api.tuples() == expected


def test_writing_a_tuple_twice_keeps_one_copy(api: Api) -> None:
    api.write("doc:1#owner@user:alice", "doc:1#owner@user:alice")
    api.write("doc:1#owner@user:alice")
    assert list(api.tuple_pages({}, page_size=10)) == [["doc:1#owner@user:alice"]]


def test_a_subject_relation_of_dots_is_a_plain_subject(api: Api) -> None:
    body = tuple_json("doc:1#owner@user:alice")
    body["subject"]["relation"] = "..."
    response = api.post("data/write", {"tuples": [body]})
    assert response.status_code == 200, response.text
    assert api.tuples() == {"doc:1#owner@user:alice"}


VALUES = [
    ("public", "BooleanValue", True, True),
    ("public", "BooleanValue", None, False),
    ("flags", "BooleanArrayValue", [True, False, True], [True, False, True]),
    ("title", "StringValue", "Hello, w\u00f6rld", "Hello, w\u00f6rld"),
    ("title", "StringValue", None, ""),
    ("tags", "StringArrayValue", ["a", "b"], ["a", "b"]),
    ("tags", "StringArrayValue", [], []),
    ("level", "IntegerValue", 5, 5),
    ("level", "IntegerValue", "5", 5),
    ("level", "IntegerValue", "-7", -7),
    ("level", "IntegerValue", 2**31 - 1, 2**31 - 1),
    ("level", "IntegerValue", 3.0, 3),
    ("levels", "IntegerArrayValue", [1, "2", -3], [1, 2, -3]),
    ("score", "DoubleValue", 1.5, 1.5),
    ("score", "DoubleValue", 2, 2.0),
    ("score", "DoubleValue", "Infinity", "Infinity"),
    ("scores", "DoubleArrayValue", [0.25, 3, -1e300], [0.25, 3.0, -1e300]),
]


@pytest.mark.parametrize(
    "name, kind, data, stored",
    VALUES,
    ids=[
        "boolean",
        "boolean-left-out",
        "boolean-array",
        "string",
        "string-left-out",
        "string-array",
        "string-array-empty",
        "integer",
        "integer-as-string",
        "negative-integer-as-string",
        "integer-max",
        "integer-as-whole-double",
        "integer-array-mixed",
        "double",
        "double-from-integer",
        "double-infinity",
        "double-array",
    ],
)
def test_every_attribute_value_type_is_written_and_read_back(
    api: Api, name: str, kind: str, data: Any, stored: Any
) -> None:
    value = attr("doc:1", name, kind, data)
    if data is None:
        del value["value"]["data"]  # protojson leaves zero values out
    token = api.write(attributes=[value])
    [page] = list(api.attribute_pages({}, token=token))
    assert page == [attr("doc:1", name, kind, stored)]
    assert type(page[0]["value"]["data"]) is type(stored)


def test_one_write_holds_tuples_and_every_attribute_type_at_one_token(api: Api) -> None:
    attributes = [
        attr("doc:1", "public", "BooleanValue", True),
        attr("doc:1", "flags", "BooleanArrayValue", [False]),
        attr("doc:1", "title", "StringValue", "t"),
        attr("doc:1", "tags", "StringArrayValue", ["x"]),
        attr("doc:1", "level", "IntegerValue", "9"),
        attr("doc:1", "levels", "IntegerArrayValue", ["1", 2]),
        attr("doc:1", "score", "DoubleValue", 0.5),
        attr("doc:1", "scores", "DoubleArrayValue", [1.5]),
    ]
    before = api.write("doc:9#owner@user:zed")
    token = api.write("doc:1#owner@user:alice", attributes=attributes)
    assert api.attributes(token=token) == {
        "doc:1$public": True,
        "doc:1$flags": [False],
        "doc:1$title": "t",
        "doc:1$tags": ["x"],
        "doc:1$level": 9,
        "doc:1$levels": [1, 2],
        "doc:1$score": 0.5,
        "doc:1$scores": [1.5],
    }
    assert api.tuples(token=token) == {"doc:1#owner@user:alice", "doc:9#owner@user:zed"}
    assert api.attributes(token=before) == {}
    assert api.tuples(token=before) == {"doc:9#owner@user:zed"}


def test_writing_an_attribute_again_replaces_its_value(api: Api) -> None:
    first = api.write(attributes=[attr("doc:1", "level", "IntegerValue", 1)])
    second = api.write(attributes=[attr("doc:1", "level", "IntegerValue", 2)])
    assert api.attributes() == {"doc:1$level": 2}
    assert api.attributes(token=first) == {"doc:1$level": 1}
    assert api.attributes(token=second) == {"doc:1$level": 2}


GOOD_TUPLE = tuple_json("doc:1#owner@user:alice")
GOOD_ATTRIBUTE = attr("doc:1", "public", "BooleanValue", True)
INVALID_ITEMS = [
    ("tuples", tuple_json("folder:1#owner@user:alice"), "ERROR_CODE_ENTITY_DEFINITION_NOT_FOUND"),
    ("tuples", tuple_json("doc:1#editor@user:alice"), "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND"),
    ("tuples", tuple_json("doc:1#view@user:alice"), "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND"),
    ("tuples", tuple_json("doc:1#public@user:alice"), "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND"),
    ("tuples", tuple_json("doc:1#owner@group:eng#member"), "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    ("tuples", tuple_json("doc:1#owner@group:eng"), "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    ("tuples", tuple_json("doc:1#viewer@group:eng#owner"), "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    ("tuples", tuple_json("doc:1#owner@nobody:x"), "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    (
        "tuples",
        tuple_json("group:eng#member@group:eng#member"),
        "ERROR_CODE_ENTITY_AND_SUBJECT_CANNOT_BE_EQUAL",
    ),
    (
        "attributes",
        attr("folder:1", "public", "BooleanValue", True),
        "ERROR_CODE_ENTITY_DEFINITION_NOT_FOUND",
    ),
    (
        "attributes",
        attr("doc:1", "color", "StringValue", "red"),
        "ERROR_CODE_ATTRIBUTE_DEFINITION_NOT_FOUND",
    ),
    (
        "attributes",
        attr("doc:1", "owner", "StringValue", "x"),
        "ERROR_CODE_ATTRIBUTE_DEFINITION_NOT_FOUND",
    ),
    (
        "attributes",
        attr("doc:1", "level", "StringValue", "5"),
        "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH",
    ),
    (
        "attributes",
        attr("doc:1", "level", "IntegerArrayValue", [5]),
        "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH",
    ),
    (
        "attributes",
        attr("doc:1", "score", "IntegerValue", 5),
        "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH",
    ),
]


@pytest.mark.parametrize(
    "where, item, reason",
    INVALID_ITEMS,
    ids=[
        "unknown-entity-type",
        "unknown-relation",
        "relation-is-a-permission",
        "relation-is-an-attribute",
        "userset-not-admitted",
        "plain-subject-not-admitted",
        "subject-relation-unknown",
        "unknown-subject-type",
        "entity-equals-subject",
        "attribute-of-unknown-entity",
        "unknown-attribute",
        "attribute-is-a-relation",
        "string-for-integer",
        "array-for-scalar",
        "integer-for-double",
    ],
)
def test_a_write_with_one_invalid_item_fails_with_permifys_code_and_writes_nothing(
    api: Api, where: str, item: dict[str, Any], reason: str
) -> None:
    body = {
        "tuples": [GOOD_TUPLE],
        "attributes": [GOOD_ATTRIBUTE],
    }
    body[where] = [*body[where], item]
    before = api.tuples(), api.attributes()
    error = _error(api.post("data/write", body), 400, reason)
    assert _fields(error) == [f"{where}[1]"]
    assert error["message"].startswith(f"{where}[1]: ")
    assert (api.tuples(), api.attributes()) == before == (set(), {})


@pytest.mark.parametrize(
    "value, field",
    [
        ({"@type": ANY + "IntegerValue", "data": "five"}, "attributes[0].value"),
        ({"@type": ANY + "IntegerValue", "data": 2**31}, "attributes[0].value"),
        ({"@type": ANY + "IntegerValue", "data": 1.5}, "attributes[0].value"),
        ({"@type": ANY + "IntegerValue", "data": True}, "attributes[0].value"),
        ({"@type": ANY + "IntegerArrayValue", "data": 5}, "attributes[0].value"),
        ({"@type": ANY + "BooleanValue", "data": "true"}, "attributes[0].value"),
        ({"@type": ANY + "StringValue", "data": 5}, "attributes[0].value"),
        ({"@type": ANY + "StringArrayValue", "data": "a"}, "attributes[0].value"),
        ({"@type": ANY + "DoubleValue", "data": "1.5x"}, "attributes[0].value"),
        ({"@type": ANY + "DoubleArrayValue", "data": [1, None]}, "attributes[0].value"),
        ({"@type": ANY + "Int32Value", "data": 5}, "attributes[0].value.@type"),
        (
            {"@type": "type.googleapis.com/google.protobuf.BoolValue", "data": True},
            "attributes[0].value.@type",
        ),
        ({"data": 5}, "attributes[0].value.@type"),
    ],
    ids=[
        "integer-word",
        "integer-beyond-int32",
        "integer-fraction",
        "integer-boolean",
        "integer-array-scalar",
        "boolean-string",
        "string-number",
        "string-array-scalar",
        "double-word",
        "double-array-null",
        "unknown-value-type",
        "foreign-value-type",
        "no-type",
    ],
)
def test_a_value_that_does_not_fit_its_type_is_a_400_naming_it(
    api: Api, value: dict[str, Any], field: str
) -> None:
    item = {"entity": {"type": "doc", "id": "1"}, "attribute": "level", "value": value}
    body = {"attributes": [item], "tuples": [GOOD_TUPLE]}
    error = _error(api.post("data/write", body), 400, "ERROR_CODE_VALIDATION")
    assert _fields(error) == [field]
    assert api.tuples() == set()


def test_a_write_before_any_schema_is_schema_not_found(client: httpx.Client) -> None:
    response = client.post("/v1/tenants/t1/data/write", json={"tuples": [GOOD_TUPLE]})
    _error(response, 404, "ERROR_CODE_SCHEMA_NOT_FOUND")


def test_an_empty_write_returns_a_token_and_changes_nothing(api: Api) -> None:
    first = api.write("doc:1#owner@user:alice")
    token = api.delete("data/write", {})
    assert token
    assert api.tuples(token=token) == api.tuples(token=first) == {"doc:1#owner@user:alice"}


@pytest.fixture
def small(start_server: Callable[..., Server]) -> Iterator[Api]:
    """A server whose writes may hold at most 3 items."""
    server = start_server(max_write_items=3)
    with server.client() as client:
        api = Api(client)
        api.schema()
        yield api


@pytest.mark.parametrize(
    "endpoint, body",
    [
        ("data/write", {"tuples": [tuple_json(f"doc:{i}#owner@user:a") for i in range(4)]}),
        (
            "data/write",
            {
                "tuples": [tuple_json("doc:1#owner@user:a"), tuple_json("doc:2#owner@user:a")],
                "attributes": [
                    attr("doc:1", "level", "IntegerValue", 1),
                    attr("doc:2", "level", "IntegerValue", 2),
                ],
            },
        ),
        (
            "data/write",
            {"attributes": [attr(f"doc:{i}", "title", "StringValue", "") for i in range(4)]},
        ),
        (
            "relationships/write",
            {"tuples": [tuple_json(f"doc:{i}#owner@user:a") for i in range(4)]},
        ),
    ],
    ids=["data-tuples", "data-mixed", "data-attributes", "relationships"],
)
def test_a_write_over_the_item_limit_is_rejected_whole(
    small: Api, endpoint: str, body: dict[str, Any]
) -> None:
    error = _error(small.post(endpoint, body), 400, "ERROR_CODE_MAX_DATA_PER_WRITE_EXCEEDED")
    assert "3" in error["message"]
    assert small.tuples() == set()
    assert small.attributes() == {}


def test_a_write_at_the_item_limit_succeeds(small: Api) -> None:
    small.write(
        "doc:1#owner@user:a",
        "doc:2#owner@user:a",
        attributes=[attr("doc:1", "level", "IntegerValue", 1)],
    )
    assert small.tuples() == {"doc:1#owner@user:a", "doc:2#owner@user:a"}
    assert small.attributes() == {"doc:1$level": 1}


def test_writes_are_validated_against_the_named_schema_version(api: Api) -> None:
    old = api.schema("entity user {}\nentity doc {\n    relation editor @user\n}\n")
    api.schema()  # the head has no `editor`
    editor = tuple_json("doc:1#editor@user:alice")
    _error(
        api.post("data/write", {"tuples": [editor]}),
        400,
        "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND",
    )
    _error(
        api.post("relationships/write", {"tuples": [editor]}),
        400,
        "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND",
    )
    assert api.tuples() == set()
    for endpoint in ("data/write", "relationships/write"):
        response = api.post(endpoint, {"metadata": {"schema_version": old}, "tuples": [editor]})
        assert response.status_code == 200, response.text
    # ... and the old version does not know what only the head defines.
    owner = {"metadata": {"schemaVersion": old}, "tuples": [GOOD_TUPLE]}
    _error(api.post("data/write", owner), 400, "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND")
    assert api.tuples() == {"doc:1#editor@user:alice"}


def test_a_write_naming_an_unknown_schema_version_is_schema_not_found(api: Api) -> None:
    body = {"metadata": {"schema_version": "nope"}, "tuples": [GOOD_TUPLE]}
    _error(api.post("data/write", body), 404, "ERROR_CODE_SCHEMA_NOT_FOUND")
    assert api.tuples() == set()


@pytest.mark.parametrize(
    "body",
    [{}, {"tuples": []}, {"tuples": None}, {"attributes": [GOOD_ATTRIBUTE]}],
    ids=["missing", "empty", "null", "attributes-only"],
)
def test_relationships_write_needs_at_least_one_tuple(api: Api, body: dict[str, Any]) -> None:
    error = _error(api.post("relationships/write", body), 400, "ERROR_CODE_VALIDATION")
    assert _fields(error) == ["tuples"]
    assert api.attributes() == {}


def test_relationships_write_writes_the_tuples(api: Api) -> None:
    body = {"tuples": [GOOD_TUPLE, tuple_json("doc:2#viewer@group:eng#member")]}
    response = api.post("relationships/write", body)
    assert response.status_code == 200, response.text
    token = shaped(m.SnapTokenResponse, response.json())["snap_token"]
    assert api.tuples(token=token) == {"doc:1#owner@user:alice", "doc:2#viewer@group:eng#member"}


def test_relationships_write_names_the_invalid_tuple(api: Api) -> None:
    body = {"tuples": [GOOD_TUPLE, GOOD_TUPLE, tuple_json("doc:1#owner@doc:2")]}
    error = _error(api.post("relationships/write", body), 400, "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND")
    assert _fields(error) == ["tuples[2]"]
    assert api.tuples() == set()


# -- read relationships ---------------------------------------------------------------------

DATA = [
    "doc:1#owner@user:alice",
    "doc:1#viewer@user:bob",
    "doc:1#viewer@group:eng#member",
    "doc:2#owner@user:bob",
    "doc:2#parent@doc:1",
    "doc:3#viewer@group:ops#member",
    "group:eng#member@user:alice",
    "group:eng#member@group:ops#member",
    "group:ops#member@user:carol",
]


@pytest.fixture
def data(api: Api) -> Api:
    api.write(*DATA)
    return api


FILTERS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("empty", {}, set(DATA)),
    ("entity-type", {"entity": {"type": "doc"}}, set(DATA[:6])),
    ("entity-id", {"entity": {"type": "doc", "ids": ["1"]}}, set(DATA[:3])),
    ("entity-ids", {"entity": {"type": "doc", "ids": ["1", "3"]}}, {*DATA[:3], DATA[5]}),
    ("entity-ids-no-type", {"entity": {"ids": ["eng"]}}, set(DATA[6:8])),
    ("entity-id-unknown", {"entity": {"type": "doc", "ids": ["9"]}}, set()),
    ("relation", {"relation": "viewer"}, {DATA[1], DATA[2], DATA[5]}),
    ("relation-unused", {"relation": "nothing"}, set()),
    (
        "entity-relation-subject-type",
        {"entity": {"type": "doc"}, "relation": "viewer", "subject": {"type": "group"}},
        {DATA[2], DATA[5]},
    ),
    ("subject-type", {"subject": {"type": "user"}}, {DATA[0], DATA[1], DATA[3], DATA[6], DATA[8]}),
    ("subject-ids", {"subject": {"type": "user", "ids": ["bob"]}}, {DATA[1], DATA[3]}),
    ("subject-ids-no-type", {"subject": {"ids": ["eng"]}}, {DATA[2]}),
    (
        "subject-relation",
        {"subject": {"type": "group", "relation": "member"}},
        {DATA[2], DATA[5], DATA[7]},
    ),
    ("subject-relation-no-type", {"subject": {"relation": "member"}}, {DATA[2], DATA[5], DATA[7]}),
    ("plain-subjects", {"subject": {"relation": "..."}}, set(DATA) - {DATA[2], DATA[5], DATA[7]}),
    ("plain-groups", {"subject": {"type": "group", "relation": "..."}}, set()),
    ("plain-doc", {"subject": {"type": "doc", "ids": ["1"], "relation": "..."}}, {DATA[4]}),
    (
        "every-field",
        {
            "entity": {"type": "group", "ids": ["eng", "ops"]},
            "relation": "member",
            "subject": {"type": "group", "ids": ["ops"], "relation": "member"},
        },
        {DATA[7]},
    ),
]


@pytest.mark.parametrize("flt, expected", [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS])
def test_read_relationships_by_filter(data: Api, flt: dict[str, Any], expected: set[str]) -> None:
    assert data.tuples(flt) == expected


@pytest.mark.parametrize("page_size", [1, 2, 4, 9, 50], ids=lambda n: f"page-{n}")
@pytest.mark.parametrize(
    "flt, expected",
    [({}, set(DATA)), ({"entity": {"type": "doc"}}, set(DATA[:6]))],
    ids=["everything", "docs"],
)
def test_read_relationships_walks_pages_seeing_each_tuple_once(
    data: Api, page_size: int, flt: dict[str, Any], expected: set[str]
) -> None:
    pages = list(data.tuple_pages(flt, page_size=page_size))
    assert all(len(page) == page_size for page in pages[:-1])
    assert 0 < len(pages[-1]) <= page_size
    seen = [t for page in pages for t in page]
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    assert len(pages) == -(-len(expected) // page_size)


def test_read_relationships_page_size_defaults_to_fifty(api: Api) -> None:
    api.write(*(f"doc:{i:03}#owner@user:u" for i in range(60)))
    pages = list(api.tuple_pages({}))
    assert [len(p) for p in pages] == [50, 10]


def test_a_cursor_handed_to_another_filter_is_a_400(data: Api) -> None:
    first = data.post("data/relationships/read", {"filter": {}, "page_size": 2}).json()
    cursor = first["continuous_token"]
    assert cursor
    for flt in (
        {"entity": {"type": "doc"}},
        {"relation": "owner"},
        {"subject": {"relation": "..."}},
    ):
        response = data.post(
            "data/relationships/read", {"filter": flt, "page_size": 2, "continuous_token": cursor}
        )
        error = _error(response, 400, "ERROR_CODE_INVALID_CONTINUOUS_TOKEN")
        assert _fields(error) == ["continuous_token"]
    attributes = data.post("data/attributes/read", {"filter": {}, "continuous_token": cursor})
    _error(attributes, 400, "ERROR_CODE_INVALID_CONTINUOUS_TOKEN")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"filter": {}, "continuous_token": "garbage"}, "continuous_token"),
        ({"filter": {}, "metadata": {"snap_token": "garbage"}}, "metadata.snap_token"),
        ({"filter": {}, "page_size": 0}, "page_size"),
        ({"filter": {}, "page_size": 10_001}, "page_size"),
        ({}, "filter"),
        ({"filter": {"entity": {"type": "Not A Name"}}}, "filter.entity.type"),
        ({"filter": {"entity": {"ids": ["a b"]}}}, "filter.entity.ids[0]"),
        ({"filter": {"subject": {"relation": "...."}}}, "filter.subject.relation"),
        ({"filter": {"relation": 5}}, "filter.relation"),
    ],
    ids=[
        "garbage-cursor",
        "garbage-snap-token",
        "page-size-zero",
        "page-size-too-big",
        "no-filter",
        "bad-entity-type",
        "bad-entity-id",
        "bad-subject-relation",
        "relation-not-a-string",
    ],
)
def test_bad_read_relationships_requests_are_400_naming_the_field(
    data: Api, body: dict[str, Any], field: str
) -> None:
    response = data.post("data/relationships/read", body)
    assert response.status_code == 400, response.text
    assert _fields(shaped(m.ErrorResponse, response.json())) == [field]


def test_reads_at_a_snap_token_repeat_after_later_writes_and_deletes(api: Api) -> None:
    a, b, c = "doc:1#owner@user:alice", "doc:2#owner@user:bob", "doc:3#viewer@user:carol"
    t1 = api.write(a)
    t2 = api.write(b, c)
    t3 = api.delete("relationships/delete", {"filter": {"entity": {"type": "doc", "ids": ["1"]}}})
    t4 = api.delete("data/delete", {"tuple_filter": {"relation": "viewer"}})
    t5 = api.write(a)
    expected = {t1: {a}, t2: {a, b, c}, t3: {b, c}, t4: {b}, t5: {a, b}}
    assert len(set(expected)) == 5
    for _ in range(2):
        for token, tuples in expected.items():
            assert api.tuples(token=token) == tuples
    assert api.tuples() == {a, b}


def test_paging_at_a_snap_token_is_unaffected_by_writes_between_pages(data: Api) -> None:
    token = data.write()
    first = data.post(
        "data/relationships/read", {"filter": {}, "page_size": 4, "metadata": {"snap_token": token}}
    ).json()
    data.delete("relationships/delete", {"filter": {"entity": {"type": "group"}}})
    data.write("doc:0#owner@user:zed", "doc:9#owner@user:zed")
    seen = [tuple_text(t) for t in first["tuples"]]
    cursor = first["continuous_token"]
    while cursor:
        page = data.post(
            "data/relationships/read",
            {
                "filter": {},
                "page_size": 4,
                "metadata": {"snap_token": token},
                "continuous_token": cursor,
            },
        ).json()
        seen += [tuple_text(t) for t in page["tuples"]]
        cursor = page["continuous_token"]
    assert sorted(seen) == sorted(DATA)


# -- read attributes ------------------------------------------------------------------------

ATTRIBUTES = [
    attr("doc:1", "public", "BooleanValue", True),
    attr("doc:1", "level", "IntegerValue", 1),
    attr("doc:2", "public", "BooleanValue", False),
    attr("doc:2", "tags", "StringArrayValue", ["x"]),
    attr("doc:3", "level", "IntegerValue", 3),
]


@pytest.fixture
def attributed(api: Api) -> Api:
    api.write(attributes=ATTRIBUTES)
    return api


@pytest.mark.parametrize(
    "flt, expected",
    [
        ({}, {"doc:1$public", "doc:1$level", "doc:2$public", "doc:2$tags", "doc:3$level"}),
        ({"entity": {"type": "doc", "ids": ["1"]}}, {"doc:1$public", "doc:1$level"}),
        (
            {"entity": {"type": "doc", "ids": ["2", "3"]}},
            {"doc:2$public", "doc:2$tags", "doc:3$level"},
        ),
        ({"attributes": ["level"]}, {"doc:1$level", "doc:3$level"}),
        ({"attributes": ["level", "tags"]}, {"doc:1$level", "doc:2$tags", "doc:3$level"}),
        ({"entity": {"type": "doc", "ids": ["1"]}, "attributes": ["public"]}, {"doc:1$public"}),
        ({"entity": {"type": "user"}}, set()),
        ({"attributes": ["title"]}, set()),
    ],
    ids=[
        "empty",
        "entity-id",
        "entity-ids",
        "name",
        "names",
        "entity-and-name",
        "other-type",
        "unused-name",
    ],
)
def test_read_attributes_by_filter(
    attributed: Api, flt: dict[str, Any], expected: set[str]
) -> None:
    assert set(attributed.attributes(flt)) == expected


@pytest.mark.parametrize("page_size", [1, 2, 3, 5], ids=lambda n: f"page-{n}")
def test_read_attributes_walks_pages_seeing_each_attribute_once(
    attributed: Api, page_size: int
) -> None:
    pages = list(attributed.attribute_pages({}, page_size=page_size))
    assert all(len(page) == page_size for page in pages[:-1])
    seen = [a for page in pages for a in page]
    assert sorted(seen, key=repr) == sorted(ATTRIBUTES, key=repr)
    assert len(pages) == -(-len(ATTRIBUTES) // page_size)


def test_read_attributes_rejects_foreign_and_garbage_tokens(attributed: Api) -> None:
    first = attributed.post("data/attributes/read", {"filter": {}, "page_size": 1}).json()
    other_filter = {
        "filter": {"attributes": ["level"]},
        "continuous_token": first["continuous_token"],
    }
    cases = [
        (other_filter, "continuous_token"),
        ({"filter": {}, "continuous_token": "garbage"}, "continuous_token"),
        ({"filter": {}, "metadata": {"snap_token": "garbage"}}, "metadata.snap_token"),
    ]
    for body, field in cases:
        error = _error(
            attributed.post("data/attributes/read", body),
            400,
            "ERROR_CODE_INVALID_CONTINUOUS_TOKEN",
        )
        assert _fields(error) == [field]


def test_read_attributes_at_a_snap_token_repeats(attributed: Api) -> None:
    before = attributed.write()
    attributed.write(attributes=[attr("doc:1", "level", "IntegerValue", 10)])
    attributed.delete("data/delete", {"attribute_filter": {"attributes": ["public"]}})
    now = {"doc:1$level": 10, "doc:2$tags": ["x"], "doc:3$level": 3}
    assert attributed.attributes() == now
    then = {"doc:1$public": True, "doc:1$level": 1, "doc:2$public": False, "doc:2$tags": ["x"]}
    then["doc:3$level"] = 3
    assert attributed.attributes(token=before) == then


# -- delete ---------------------------------------------------------------------------------


@pytest.fixture
def full(data: Api) -> tuple[Api, str]:
    token = data.write(attributes=ATTRIBUTES)
    return data, token


def test_data_delete_by_tuple_filter_leaves_attributes(full: tuple[Api, str]) -> None:
    api, before = full
    token = api.delete("data/delete", {"tuple_filter": {"entity": {"type": "doc", "ids": ["1"]}}})
    assert api.tuples(token=token) == set(DATA) - set(DATA[:3])
    assert len(api.attributes(token=token)) == len(ATTRIBUTES)
    assert api.tuples(token=before) == set(DATA)


def test_data_delete_by_attribute_filter_leaves_tuples(full: tuple[Api, str]) -> None:
    api, before = full
    token = api.delete(
        "data/delete", {"attribute_filter": {"entity": {"type": "doc", "ids": ["1", "2"]}}}
    )
    assert api.attributes(token=token) == {"doc:3$level": 3}
    assert api.tuples(token=token) == set(DATA)
    assert len(api.attributes(token=before)) == len(ATTRIBUTES)


def test_data_delete_by_both_filters_at_one_token(full: tuple[Api, str]) -> None:
    api, before = full
    token = api.delete(
        "data/delete",
        {
            "tuple_filter": {"subject": {"type": "group", "relation": "member"}},
            "attribute_filter": {"attributes": ["level"]},
        },
    )
    assert api.tuples(token=token) == set(DATA) - {DATA[2], DATA[5], DATA[7]}
    assert set(api.attributes(token=token)) == {"doc:1$public", "doc:2$public", "doc:2$tags"}
    assert api.tuples(token=before) == set(DATA)
    assert len(api.attributes(token=before)) == len(ATTRIBUTES)


def test_data_delete_of_plain_subjects_keeps_usersets(full: tuple[Api, str]) -> None:
    api, _ = full
    token = api.delete("data/delete", {"tuple_filter": {"subject": {"relation": "..."}}})
    assert api.tuples(token=token) == {DATA[2], DATA[5], DATA[7]}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tuple_filter": {}, "attribute_filter": {}},
        {"tuple_filter": {"entity": {"ids": []}, "subject": {}}},
        {"attribute_filter": {"attributes": []}},
    ],
    ids=["no-filters", "empty-filters", "empty-lists", "no-names"],
)
def test_data_delete_with_no_filter_is_a_400_and_deletes_nothing(
    full: tuple[Api, str], body: dict[str, Any]
) -> None:
    api, _ = full
    error = _error(api.post("data/delete", body), 400, "ERROR_CODE_VALIDATION")
    assert _fields(error) == ["tuple_filter"]
    assert api.tuples() == set(DATA)
    assert len(api.attributes()) == len(ATTRIBUTES)


def test_relationships_delete_removes_matching_tuples_only(full: tuple[Api, str]) -> None:
    api, before = full
    token = api.delete(
        "relationships/delete", {"filter": {"relation": "member", "subject": {"ids": ["alice"]}}}
    )
    assert api.tuples(token=token) == set(DATA) - {DATA[6]}
    assert api.tuples(token=before) == set(DATA)
    assert len(api.attributes(token=token)) == len(ATTRIBUTES)


@pytest.mark.parametrize(
    "body",
    [{}, {"filter": {}}, {"filter": {"entity": {}, "subject": {"ids": []}}}, {"filter": None}],
    ids=["no-filter", "empty-filter", "empty-parts", "null-filter"],
)
def test_relationships_delete_with_no_filter_is_a_400_and_deletes_nothing(
    full: tuple[Api, str], body: dict[str, Any]
) -> None:
    api, _ = full
    error = _error(api.post("relationships/delete", body), 400, "ERROR_CODE_VALIDATION")
    assert _fields(error) == ["filter"]
    assert api.tuples() == set(DATA)


def test_a_delete_matching_nothing_still_returns_a_readable_token(full: tuple[Api, str]) -> None:
    api, _ = full
    token = api.delete("relationships/delete", {"filter": {"entity": {"type": "user"}}})
    assert api.tuples(token=token) == set(DATA)


@pytest.mark.parametrize(
    "endpoint", ["data/relationships/read", "data/attributes/read"], ids=["tuples", "attributes"]
)
def test_reads_name_the_snapshot_they_read_in_x_snap_token(api: Api, endpoint: str) -> None:
    old = api.write("doc:1#owner@user:alice")
    new = api.write("doc:2#owner@user:bob")

    def read(token: str) -> str:
        body = {"metadata": {"snap_token": token}, "filter": {}}
        response = api.post(endpoint, body)
        assert response.status_code == 200, response.text
        return str(response.json()["x_snap_token"])

    assert read(old) == old
    latest = read("")
    assert latest == new
    api.write("doc:3#owner@user:carol")
    # The token a read hands back reads the same state later.
    assert api.tuples(token=latest) == {"doc:1#owner@user:alice", "doc:2#owner@user:bob"}
