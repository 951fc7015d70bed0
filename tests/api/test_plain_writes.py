"""The plain reading of tuple write bodies gives what the models give, or nothing.

Bodies are built near the usual shape and then bent (keys renamed or added, values of other
types, ids and names that miss their patterns, odd bytes); whenever ``plain_write`` reads one,
the models must accept it and give the same schema version and tuples.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import models as m
from api.models.plain_writes import plain_write
from storage.base import Tuple
from tests.api.near_misses import IDS, NAMES, RELATIONS, TEXT, bend

_EXTRA = ["extra", "schemaVersion", "Entity", "relation"]


def _bend(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    return bend(obj, data, extra=_EXTRA, odds=40)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    data = draw(st.data())
    tuples = []
    for _ in range(draw(st.integers(0, 3))):
        entity = {"type": draw(NAMES), "id": draw(IDS)}
        subject = {"type": draw(NAMES), "id": draw(IDS)}
        if draw(st.booleans()):
            subject["relation"] = draw(RELATIONS)
        item: dict[str, Any] = {
            "entity": _bend(entity, data),
            "relation": draw(NAMES),
            "subject": _bend(subject, data),
        }
        tuples.append(_bend(item, data))
    body: dict[str, Any] = {"tuples": tuples}
    if draw(st.booleans()):
        body["metadata"] = _bend({"schema_version": draw(TEXT)}, data)
    if draw(st.booleans()):
        body["attributes"] = draw(st.sampled_from([[], [], None, [{}]]))
    raw = json.dumps(_bend(body, data)).encode()
    return draw(st.sampled_from([raw] * 8 + [b"\xef\xbb\xbf" + raw, raw + b" ", raw[:-1], b""]))


def _models(raw: bytes, model: type[m.DataWriteRequest | m.RelationshipsWriteRequest]) -> Any:
    try:
        body = model.model_validate_json(raw or b"{}")
    except ValueError:
        return None
    return body.metadata.schema_version, [t.to_tuple() for t in body.tuples]


@settings(max_examples=300, deadline=None)
@given(bodies())
def test_a_body_read_plainly_reads_as_the_models_read_it(raw: bytes) -> None:
    for required, model in ((False, m.DataWriteRequest), (True, m.RelationshipsWriteRequest)):
        plain = plain_write(raw, tuples_required=required)
        if plain is not None:
            assert _models(raw, model) == (plain.schema_version, plain.tuples)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "metadata": {"schema_version": "v1"},
                "tuples": [
                    {
                        "entity": {"type": "doc", "id": "1"},
                        "relation": "viewer",
                        "subject": {"type": "group", "id": "g-1@x", "relation": "member"},
                    },
                    {
                        "entity": {"type": "doc", "id": "*"},
                        "relation": "owner",
                        "subject": {"type": "user", "id": "ann", "relation": "..."},
                    },
                ],
                "attributes": [],
            },
            (
                "v1",
                [
                    Tuple("doc", "1", "viewer", "group", "g-1@x", "member"),
                    Tuple("doc", "*", "owner", "user", "ann"),
                ],
            ),
        ),
        ({"metadata": {"schemaVersion": "v2"}, "tuples": []}, ("v2", [])),
        ({}, ("", [])),
    ],
    ids=["usual", "camel-version", "empty"],
)
def test_the_usual_bodies_are_read_plainly(body: dict[str, Any], expected: Any) -> None:
    raw = json.dumps(body).encode()
    plain = plain_write(raw, tuples_required=False)
    assert plain is not None
    assert (plain.schema_version, plain.tuples) == expected == _models(raw, m.DataWriteRequest)


def test_a_relationships_write_needs_a_tuple() -> None:
    assert plain_write(b'{"tuples": []}', tuples_required=True) is None
