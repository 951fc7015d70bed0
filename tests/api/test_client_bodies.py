"""The client's data write body, built as text for speed (`data_write_body`), is exactly the JSON
of the models' dicts for any strings: quotes, backslashes, control characters, non-ASCII and lone
surrogates included."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from api import models as m
from api.client.permify import data_write_body
from dsl.schema import AttributeType
from storage.base import Attribute, Tuple

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
TUPLES = st.lists(st.builds(Tuple, *([ANY_TEXT] * 6)), max_size=5)


@settings(max_examples=300, deadline=None)
@given(tuples=TUPLES)
def test_the_body_is_the_json_of_the_models_dicts(tuples: list[Tuple]) -> None:
    attributes = [Attribute("doc", "1", "public", AttributeType.BOOLEAN, True)]
    body = data_write_body(tuples, attributes)
    assert body.isascii()
    assert json.loads(body) == {
        "tuples": [m.tuple_json(t) for t in tuples],
        "attributes": [m.attribute_json(a) for a in attributes],
    }
