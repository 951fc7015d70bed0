"""The plain reading of check bodies gives what the models give, or nothing.

Bodies are built near the usual shape and then bent (keys renamed or added, values of other
types, names and ids that miss their patterns, odd bytes); whenever ``plain_check`` reads one,
the models must accept it and give the same entity, permission, subject and options.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import models as m
from api.models import plain_checks
from api.models.plain_checks import MAX_PLAIN_BYTES, PlainCheck, plain_check
from api.routes.permissions import options_of
from engine.types import Entity, RequestOptions
from storage.base import Subject
from tests.api.near_misses import IDS, NAMES, RELATIONS, TEXT, bend

DEPTHS = st.sampled_from([20, 50, 3, 2**31 - 1] * 3 + [2, 0, -1, 2**31, 20.0, 3.5, True])
_EXTRA = ["extra", "snapToken", "schemaVersion", "context", "arguments", "relation"]


def _bend(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    return bend(obj, data, extra=_EXTRA, odds=30)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    data = draw(st.data())
    body: dict[str, Any] = {}
    if draw(st.booleans()):  # first, as the plain reading wants it
        metadata = {"snap_token": draw(TEXT), "schema_version": draw(TEXT), "depth": draw(DEPTHS)}
        if draw(st.integers(0, 3)) == 0:
            metadata = dict(data.draw(st.permutations(list(metadata.items()))))
        body["metadata"] = _bend(metadata, data)
    subject = {"type": draw(NAMES), "id": draw(IDS)}
    if draw(st.booleans()):
        subject["relation"] = draw(RELATIONS)
    body["entity"] = _bend({"type": draw(NAMES), "id": draw(IDS)}, data)
    body["permission"] = draw(NAMES)
    body["subject"] = _bend(subject, data)
    body = _bend(body, data)
    if draw(st.integers(0, 9)) == 0:
        body = dict(data.draw(st.permutations(list(body.items()))))
    layout = draw(
        st.sampled_from([{}, {"separators": (",", ":")}, {"indent": 1}, {"indent": "\t"}])
    )
    raw = json.dumps(body, ensure_ascii=draw(st.booleans()), **layout).encode(
        "utf-8", "surrogatepass"
    )
    return draw(
        st.sampled_from(
            [raw] * 8 + [b"\xef\xbb\xbf" + raw, b" \r\n" + raw + b" ", raw[:-1], raw + b"x", b""]
        )
    )


def _models(raw: bytes) -> PlainCheck | None:
    try:
        body = m.CheckRequest.model_validate_json(raw or b"{}")
    except ValueError:
        return None
    return PlainCheck(
        Entity(body.entity.type, body.entity.id),
        body.permission,
        body.subject.to_subject(),
        options_of(body.metadata, body.context),
    )


@settings(max_examples=600, deadline=None)
@given(bodies())
def test_a_body_read_plainly_reads_as_the_models_read_it(raw: bytes) -> None:
    plain = plain_check(raw)
    if plain is not None:
        assert _models(raw) == plain


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "metadata": {"snap_token": "", "schema_version": "", "depth": 20},
                "entity": {"type": "document", "id": "doc-1"},
                "permission": "view",
                "subject": {"type": "user", "id": "u-1", "relation": ""},
            },
            PlainCheck(
                Entity("document", "doc-1"),
                "view",
                Subject("user", "u-1"),
                RequestOptions(depth=20),
            ),
        ),
        (
            {
                "entity": {"type": "doc", "id": "*"},
                "permission": "edit",
                "subject": {"type": "group", "id": "g@x", "relation": "member"},
            },
            PlainCheck(
                Entity("doc", "*"), "edit", Subject("group", "g@x", "member"), RequestOptions()
            ),
        ),
        (
            {
                "metadata": {"snap_token": "tok", "schema_version": "v1"},
                "entity": {"type": "doc", "id": "1"},
                "permission": "view",
                "subject": {"type": "user", "id": "ann", "relation": "..."},
            },
            PlainCheck(
                Entity("doc", "1"),
                "view",
                Subject("user", "ann"),
                RequestOptions(snap_token="tok", schema_version="v1"),
            ),
        ),
    ],
    ids=["usual", "no-metadata", "token-and-ellipsis"],
)
def test_the_usual_bodies_are_read_plainly(body: dict[str, Any], expected: PlainCheck) -> None:
    raw = json.dumps(body).encode()
    assert plain_check(raw) == expected == _models(raw)


@pytest.mark.parametrize(
    "body",
    [
        b'{"metadata":{"snap_token":"\\udc00"},"entity":{"type":"d","id":"1"},'
        b'"permission":"v","subject":{"type":"u","id":"a"}}',
        b'{"metadata":{"depth":2},"entity":{"type":"d","id":"1"},'
        b'"permission":"v","subject":{"type":"u","id":"a"}}',
        b'{"entity":{"type":"d","id":"1"},"permission":"v","subject":{"type":"u","id":"a"},'
        b'"context":{}}',
        b'{"entity":{"type":"d","id":"1"},"permission":"v","subject":{"type":"u","id":"a\\n"}}',
        b'{"metadata":{"depth":20,"depth":30},"entity":{"type":"d","id":"1"},'
        b'"permission":"v","subject":{"type":"u","id":"a"}}',
        b'{"entity":{"type":"d","id":"\\u0031"},"permission":"v","subject":{"type":"u","id":"a"}}',
        b'{"metadata":{"depth":"20"},"entity":{"type":"d","id":"1"},'
        b'"permission":"v","subject":{"type":"u","id":"a"}}',
        b'{"metadata":{"snap_token":5},"entity":{"type":"d","id":"1"},'
        b'"permission":"v","subject":{"type":"u","id":"a"}}',
    ],
    ids=[
        "lone-surrogate",
        "shallow",
        "context",
        "id-newline",
        "twice",
        "escape",
        "depth-string",
        "token-number",
    ],
)
def test_other_bodies_are_left_to_the_models(body: bytes) -> None:
    assert plain_check(body) is None



_USUAL = (
    b'{"entity": {"type": "doc", "id": "1"}, "permission": "view", '
    b'"subject": {"type": "user", "id": "ann"}}'
)


@pytest.mark.parametrize(
    "head",
    [b'{"metadata": {', b'{"metadata": {"depth": 5', b"{", _USUAL[:-2]],
)
def test_whitespace_that_fails_to_match_costs_linear_time(head: bytes) -> None:
    # Two whitespace runs meeting in the pattern made such a body quadratic: 16,000 spaces took
    # 0.2 s and a megabyte would hold the event loop for minutes. Linear, 200,000 take ~5 ms.
    body = (head + b" " * 200_000 + b"X").decode()
    started = time.perf_counter()
    assert plain_checks._BODY.fullmatch(body) is None
    assert time.perf_counter() - started < 1.0


def test_a_long_body_is_left_to_the_models() -> None:
    assert plain_check(_USUAL) is not None
    padded = _USUAL[:-1] + b" " * (MAX_PLAIN_BYTES - len(_USUAL) + 1) + b"}"
    assert len(padded) > MAX_PLAIN_BYTES
    assert plain_check(padded) is None


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(TEXT, TEXT, DEPTHS),
    NAMES,
    IDS,
    NAMES,
    NAMES,
    IDS,
    st.none() | RELATIONS,
)
def test_the_compact_reading_gives_what_the_reading_of_any_layout_gives(
    metadata: tuple[str, str, Any],
    entity_type: str,
    entity_id: str,
    permission: str,
    subject_type: str,
    subject_id: str,
    relation: str | None,
) -> None:
    subject = {"type": subject_type, "id": subject_id}
    if relation is not None:
        subject["relation"] = relation
    snap_token, schema_version, depth = metadata
    body = {
        "metadata": {"snap_token": snap_token, "schema_version": schema_version, "depth": depth},
        "entity": {"type": entity_type, "id": entity_id},
        "permission": permission,
        "subject": subject,
    }
    compact = json.dumps(body, separators=(",", ":")).encode()
    spaced = json.dumps(body).encode()  # ", " and ": ": only the reading of any layout
    assert plain_checks._COMPACT.fullmatch(spaced.decode()) is None
    read = plain_check(compact)
    assert read == plain_check(spaced)
    if read is not None:  # else left to the models (an escape, a name off its pattern)
        assert read == _models(compact)
        assert plain_checks._COMPACT.fullmatch(compact.decode()) is not None
