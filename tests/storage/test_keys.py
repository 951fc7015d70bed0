"""Property tests of the key encoding (storage/keys.py) and the tokens (storage/tokens.py).

The key encoding must be injective, order-preserving and prefix-isolating for *any* strings,
including NUL, the bytes the escape uses, separator-like characters and lone surrogates; the
tokens must round-trip and turn every foreign or malformed input into InvalidToken.
"""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from storage import keys, tokens
from storage.base import Tuple
from storage.errors import InvalidToken

PROPS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Strings chosen to sit next to each other in the encoding: separators of the text forms,
# the escape's own bytes, a value and its extensions, surrogates and the largest code point.
TRICKY = [
    "",
    ":",
    "#",
    "@",
    "|",
    "$",
    "\x00",
    "\x01",
    "\xff",
    "\x00\x01",
    "\x00\xff",
    "\x00\x00\x01",
    "\ud800",
    "\udfff",
    "\ud7ff",
    "\ue000",
    "\ufffd",
    "\U0010ffff",
    "a",
    "a\x00",
    "a\x00\x01b",
    "ab",
    "doc",
    "docs",
]

any_char = st.characters(exclude_categories=())  # every code point, lone surrogates included
text = st.one_of(
    st.sampled_from(TRICKY),
    st.lists(st.sampled_from(TRICKY), max_size=4).map("".join),
    st.text(alphabet=any_char, max_size=12),
)
parts = st.lists(text, max_size=6)
tuples = st.builds(Tuple, text, text, text, text, text, text)
revisions = st.integers(min_value=0, max_value=keys.MAX_REVISION)


# -- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("s", TRICKY, ids=[repr(s) for s in TRICKY])
def test_component_of_awkward_string_round_trips(s: str) -> None:
    encoded = keys.component(s)
    assert encoded.endswith(keys.TERMINATOR)
    assert encoded.count(keys.TERMINATOR) == 1  # the terminator, and nothing inside
    assert keys.split(encoded) == [s]


@PROPS
@given(text)
def test_component_round_trips(s: str) -> None:
    assert keys.split(keys.component(s)) == [s]


@PROPS
@given(parts)
@example(["\x00", "\x00\x01", "\x00\xff", "\ud800", ":", "#", "@", "|", "\x01", "\xff"])
@example(["", "", ""])
@example([])
def test_components_round_trip(ps: list[str]) -> None:
    encoded = keys.components(ps)
    assert encoded == b"".join(keys.component(p) for p in ps)
    assert keys.split(encoded) == ps


@PROPS
@given(tuples)
def test_tuple_bodies_round_trip(t: Tuple) -> None:
    assert keys.tuple_from_forward(keys.forward_body(t)) == t
    assert keys.tuple_from_reverse(keys.reverse_body(t)) == t


@PROPS
@given(revisions)
def test_rev8_round_trips_and_orders_numerically(r: int) -> None:
    raw = keys.rev8(r)
    assert len(raw) == 8
    assert keys.revision_of(raw) == r
    assert (raw < keys.rev8(r + 1)) if r < keys.MAX_REVISION else raw == b"\xff" * 8


@PROPS
@given(revisions, revisions)
def test_rev8_preserves_order(a: int, b: int) -> None:
    assert (keys.rev8(a) < keys.rev8(b)) == (a < b)


@pytest.mark.parametrize(
    "body", [b"a", b"a\x00\x01b"], ids=["no-terminator", "text-after-last-terminator"]
)
def test_split_refuses_a_body_not_ending_in_a_terminator(body: bytes) -> None:
    with pytest.raises(ValueError, match="terminator"):
        keys.split(body)


# -- injectivity -----------------------------------------------------------------------------


@PROPS
@given(parts, parts)
@example(["a", ""], ["a"])
@example(["a\x00"], ["a", ""])
@example(["a\x00\x01b"], ["a", "b"])
@example(["\x00\x01"], ["", ""])
@example(["\x00\xff"], ["\x00"])
def test_different_component_lists_encode_differently(a: list[str], b: list[str]) -> None:
    if a != b:
        assert keys.components(a) != keys.components(b)
    else:
        assert keys.components(a) == keys.components(b)


versioned_tuples = st.tuples(text, tuples, revisions)


@PROPS
@given(versioned_tuples, versioned_tuples)
@example(("a", Tuple("b", "c", "d", "e", "f"), 1), ("a\x00\x01b", Tuple("c", "d", "e", "f", ""), 1))
@example(("\ud800", Tuple(*"abcdef"), 0), ("\ud800", Tuple(*"abcdef"), 1))
def test_tuple_keys_are_injective(
    first: tuple[str, Tuple, int], second: tuple[str, Tuple, int]
) -> None:
    """Full forward/reverse keys determine (tenant, tuple, revision) and never collide across
    the two indexes."""
    (ta, a, ra), (tb, b, rb) = first, second
    same = first == second

    def fwd(tenant: str, t: Tuple, r: int) -> bytes:
        return keys.forward_prefix(keys.tenant_prefix(tenant), *t) + keys.rev8(r)

    def rev(tenant: str, t: Tuple, r: int) -> bytes:
        return keys.tenant_prefix(tenant) + keys.REVERSE + keys.reverse_body(t) + keys.rev8(r)

    assert (fwd(ta, a, ra) == fwd(tb, b, rb)) == same
    assert (rev(ta, a, ra) == rev(tb, b, rb)) == same
    assert fwd(ta, a, ra) != rev(tb, b, rb)
    assert keys.forward_prefix(keys.tenant_prefix(ta), *a) == (
        keys.tenant_prefix(ta) + keys.FORWARD + keys.forward_body(a)
    )


@PROPS
@given(text, text)
def test_tenant_prefixes_are_injective_and_outside_metadata(a: str, b: str) -> None:
    assert (keys.tenant_prefix(a) == keys.tenant_prefix(b)) == (a == b)
    assert (keys.tenant_registry_key(a) == keys.tenant_registry_key(b)) == (a == b)
    for meta in (keys.META, keys.TENANTS, keys.REVISIONS):
        assert not keys.tenant_prefix(a).startswith(meta)
    assert keys.tenant_registry_key(a).startswith(keys.TENANTS)


# -- order -----------------------------------------------------------------------------------


@PROPS
@given(text, text)
@example("a", "a\x00")
@example("a\x00", "a\x01")
@example("\ud7ff", "\ud800")
@example("\udfff", "\ue000")
@example("\uffff", "\U00010000")
@example("doc", "docs")
def test_component_order_follows_code_points(a: str, b: str) -> None:
    assert (keys.component(a) < keys.component(b)) == (a < b)


@PROPS
@given(parts, parts)
@example(["a"], ["a", ""])
@example(["a", "b"], ["a\x00"])
@example(["doc", "z"], ["docs", ""])
@example(["", "\x00"], ["\x00"])
def test_components_order_follows_list_order(a: list[str], b: list[str]) -> None:
    assert (keys.components(a) < keys.components(b)) == (a < b)


@PROPS
@given(tuples, tuples)
def test_forward_keys_sort_like_tuples(a: Tuple, b: Tuple) -> None:
    assert (keys.forward_body(a) < keys.forward_body(b)) == (tuple(a) < tuple(b))


# -- range isolation -------------------------------------------------------------------------


@PROPS
@given(text, text, st.binary(max_size=24))
@example("a", "ab", b"")
@example("a", "a.b", b"F")
@example("a", "a\x00", b"")
@example("a", "a\x00\x01b", b"")
@example("", "\x00", b"\x01")
def test_tenant_ranges_do_not_overlap(t: str, u: str, suffix: bytes) -> None:
    key_under_u = keys.tenant_prefix(u) + suffix
    assert key_under_u.startswith(keys.tenant_prefix(t)) == (t == u)
    start, stop = keys.tenant_prefix(t), keys.prefix_end(keys.tenant_prefix(t))
    assert (start <= key_under_u < stop) == (t == u)


@PROPS
@given(parts, parts, revisions)
@example(["doc"], ["docs", "1"], 1)
@example(["doc", "a"], ["doc", "a\x00"], 1)
@example(["doc", "a"], ["doc", "a\x00\x01b"], 1)
@example(["doc", "a\x00"], ["doc", "a", ""], 1)
@example(["a", ""], ["a"], 0)
def test_whole_component_prefix_matches_only_list_prefixes(
    a: list[str], b: list[str], r: int
) -> None:
    # Keys end in an 8-byte revision after the components; the store's revisions are far
    # below 2**48, so the revision's first two bytes are 00 00 and never extend a component.
    r %= 1 << 48
    key = keys.components(b) + keys.rev8(r)
    assert key.startswith(keys.components(a)) == (b[: len(a)] == a)


@pytest.mark.parametrize(
    ("prefix_parts", "key_tuple", "inside"),
    [
        (("doc", "a"), Tuple("doc", "a", "viewer", "user", "1"), True),
        (("doc",), Tuple("docs", "a", "viewer", "user", "1"), False),
        (("doc", "a"), Tuple("doc", "a\x00", "viewer", "user", "1"), False),
        (("doc", "a"), Tuple("doc", "a\x00\x01b", "viewer", "user", "1"), False),
        (("doc", "a", "viewer"), Tuple("doc", "a", "viewer", "user", "1"), True),
        (("doc", "a", "view"), Tuple("doc", "a", "viewer", "user", "1"), False),
        (("doc", "a", "viewer", "user", "1"), Tuple("doc", "a", "viewer", "user", "1"), True),
        (("doc", "a", "viewer", "user", "1"), Tuple("doc", "a", "viewer", "user", "10"), False),
    ],
    ids=[
        "same-entity",
        "doc-vs-docs",
        "a-vs-a-nul",
        "a-vs-a-nul-01-b",
        "relation",
        "relation-prefix-text",
        "subject",
        "subject-1-vs-10",
    ],
)
def test_forward_prefix_isolates_entities(
    prefix_parts: tuple[str, ...], key_tuple: Tuple, inside: bool
) -> None:
    tp = keys.tenant_prefix("t1")
    prefix = keys.forward_prefix(tp, *prefix_parts)
    key = tp + keys.FORWARD + keys.forward_body(key_tuple) + keys.rev8(7)
    assert key.startswith(prefix) == inside
    assert (prefix <= key < keys.prefix_end(prefix)) == inside


@PROPS
@given(text, text, text, text)
def test_attribute_and_record_prefixes_isolate_whole_components(
    et: str, eid: str, other: str, name: str
) -> None:
    tp = keys.tenant_prefix("t1")
    key = keys.attribute_prefix(tp, et, other, name) + keys.rev8(3)
    assert key.startswith(keys.attribute_prefix(tp, et, eid)) == (eid == other)
    record = keys.record_prefix(tp, et, [other, name])
    assert record.startswith(keys.record_prefix(tp, et, [eid])) == (eid == other)
    assert keys.split(record[len(tp) + 1 :]) == [et, other, name]


# -- prefix_end ------------------------------------------------------------------------------


@PROPS
@given(st.binary(min_size=1, max_size=12), st.binary(max_size=12))
@example(b"a\xff", b"\xff\xff")
@example(b"\x00", b"")
@example(b"\x01\xff\xff", b"\xff")
def test_prefix_end_bounds_every_extension(p: bytes, suffix: bytes) -> None:
    if p.rstrip(b"\xff") == b"":
        with pytest.raises(ValueError):
            keys.prefix_end(p)
        return
    end = keys.prefix_end(p)
    assert p < end
    assert p + suffix < end
    assert not end.startswith(p)


@PROPS
@given(st.binary(min_size=1, max_size=8), st.binary(max_size=10))
@example(b"a\xff", b"b")
@example(b"a\xff", b"a\xff\xff\xff")
@example(b"a", b"a\xff")
@example(b"a", b"b")
def test_prefix_end_is_at_most_every_greater_key_outside_the_prefix(p: bytes, k: bytes) -> None:
    if p.rstrip(b"\xff") == b"":
        return
    end = keys.prefix_end(p)
    if k > p and not k.startswith(p):
        assert k >= end
    assert (p <= k < end) == k.startswith(p)


@PROPS
@given(st.binary(min_size=1, max_size=8), st.binary(max_size=6), st.binary(max_size=6))
def test_prefix_end_against_keys_sharing_the_prefix_stem(
    p: bytes, tail: bytes, other: bytes
) -> None:
    """Keys built from the prefix's own bytes are the likeliest to land on the boundary."""
    if p.rstrip(b"\xff") == b"":
        return
    end = keys.prefix_end(p)
    for cut in range(len(p) + 1):
        k = p[:cut] + other + tail
        assert (p <= k < end) == k.startswith(p)


@pytest.mark.parametrize("p", [b"", b"\xff", b"\xff\xff"], ids=["empty", "ff", "ff-ff"])
def test_prefix_end_refuses_prefixes_without_an_end(p: bytes) -> None:
    with pytest.raises(ValueError):
        keys.prefix_end(p)


# -- snap tokens ------------------------------------------------------------------------------

store_ids = st.binary(min_size=tokens.STORE_ID_BYTES, max_size=tokens.STORE_ID_BYTES)
TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")


@PROPS
@given(store_ids, revisions)
def test_snap_token_round_trips(store_id: bytes, revision: int) -> None:
    token = tokens.encode_snap(store_id, revision)
    assert TOKEN_CHARS.fullmatch(token)
    assert tokens.decode_snap(store_id, token) == revision


@PROPS
@given(store_ids, store_ids, revisions)
def test_snap_token_from_another_store_is_refused(a: bytes, b: bytes, revision: int) -> None:
    token = tokens.encode_snap(a, revision)
    if a == b:
        assert tokens.decode_snap(b, token) == revision
    else:
        with pytest.raises(InvalidToken, match="different data store"):
            tokens.decode_snap(b, token)


@PROPS
@given(store_ids, revisions, revisions)
def test_snap_tokens_name_their_revision_only(store_id: bytes, a: int, b: int) -> None:
    assert (tokens.encode_snap(store_id, a) == tokens.encode_snap(store_id, b)) == (a == b)


def _b64(raw: bytes) -> str:
    """Unpadded URL-safe base64, the tokens' outer form: gets garbage past the alphabet check."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


garbage = st.one_of(
    st.text(alphabet=any_char, max_size=40),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ ", max_size=40
    ),
    st.binary(max_size=40).map(_b64),
    st.binary(max_size=40).map(lambda raw: _b64(b"\x01" + raw)),
)


@PROPS
@given(store_ids, garbage)
@example(b"\x00" * 8, "")
@example(b"\x00" * 8, "A")
@example(b"\x00" * 8, "AQ")
@example(b"\x00" * 8, "AQ==")
@example(b"\x00" * 8, "\ud800")
@example(b"\x00" * 8, "AQAAAAAAAAAAAAAAAAAAAAA\n")
@example(b"\x00" * 8, "٣٣٣٣")
def test_garbage_snap_token_raises_only_invalid_token(store_id: bytes, token: str) -> None:
    try:
        revision = tokens.decode_snap(store_id, token)
    except InvalidToken as exc:
        assert "snap token" in str(exc)
    else:
        assert 0 <= revision <= keys.MAX_REVISION
        assert tokens.decode_snap(store_id, tokens.encode_snap(store_id, revision)) == revision


@PROPS
@given(st.text(max_size=8), garbage)
@example("q", "")
@example("q", "A")
@example("q", "\x00")
@example("q", "AQ")
def test_garbage_cursor_raises_only_invalid_token(query: str, token: str) -> None:
    fp = tokens.fingerprint("tuples", query)
    try:
        position = tokens.decode_cursor(fp, token)
    except InvalidToken as exc:
        assert "token" in str(exc)
    else:
        assert tokens.decode_cursor(fp, tokens.encode_cursor(fp, position)) == position


@PROPS
@given(st.text(max_size=8), st.text(max_size=8), st.binary(max_size=40))
@example("t1", "t2", b"")
def test_cursor_round_trips_and_is_refused_by_another_query(
    a: str, b: str, position: bytes
) -> None:
    fa = tokens.fingerprint("tuples", a)
    fb = tokens.fingerprint("tuples", b)
    cursor = tokens.encode_cursor(fa, position)
    assert TOKEN_CHARS.fullmatch(cursor)
    assert tokens.decode_cursor(fa, cursor) == position
    if a != b:
        assert fa != fb
        with pytest.raises(InvalidToken, match="does not belong to this query"):
            tokens.decode_cursor(fb, cursor)


def test_cursor_for_another_query_kind_is_refused() -> None:
    cursor = tokens.encode_cursor(tokens.fingerprint("tuples", "t1"), b"position")
    with pytest.raises(InvalidToken):
        tokens.decode_cursor(tokens.fingerprint("attributes", "t1"), cursor)


def test_snap_token_is_not_a_cursor_of_its_store() -> None:
    """A snap token handed back as a cursor must not decode to a meaningful position silently
    matching a query: its bytes after the version are a store id, not a fingerprint."""
    store_id = b"\x07" * 8
    snap = tokens.encode_snap(store_id, 5)
    with pytest.raises(InvalidToken):
        tokens.decode_cursor(tokens.fingerprint("tuples", "t1"), snap)


# -- schema versions -------------------------------------------------------------------------

VERSION = re.compile(r"[0-9a-v]{20}")
MAX_MS = (1 << 48) - 1  # the version layout holds 48 bits of milliseconds
versions = st.text(alphabet="0123456789abcdefghijklmnopqrstuv", min_size=20, max_size=20).filter(
    lambda v: v != "v" * 20
)


@PROPS
@given(st.one_of(st.just(""), versions), st.integers(min_value=0, max_value=MAX_MS))
@example("", 0)
@example("", MAX_MS)
@example("0" * 20, 0)
@example("vvvvvvvvvvvvvvvvvvvu", 0)
@example("uvvvvvvvvvvvvvvvvvvv", MAX_MS)
def test_new_schema_version_sorts_after_the_previous_one(previous: str, now_ms: int) -> None:
    version = tokens.new_schema_version(previous, now_ms)
    assert VERSION.fullmatch(version)
    assert version > previous


@PROPS
@given(st.lists(st.integers(min_value=0, max_value=MAX_MS), min_size=1, max_size=30))
def test_schema_versions_from_a_chain_of_writes_strictly_increase(times: list[int]) -> None:
    """Whatever the clock does (jumps back, repeats), each version sorts after the last."""
    previous = ""
    for now_ms in times:
        version = tokens.new_schema_version(previous, now_ms)
        assert VERSION.fullmatch(version)
        assert version > previous
        previous = version


@PROPS
@given(st.integers(min_value=0, max_value=MAX_MS - 1))
def test_schema_versions_follow_the_clock(now_ms: int) -> None:
    assert tokens.new_schema_version("", now_ms) < tokens.new_schema_version("", now_ms + 1)


def test_new_schema_version_after_the_largest_version_is_refused() -> None:
    with pytest.raises(ValueError, match="sorts after"):
        tokens.new_schema_version("v" * 20, 0)
    with pytest.raises(ValueError, match="sorts after"):
        tokens.new_schema_version("", 1 << 48)
