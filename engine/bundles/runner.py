"""Running a bundle: its arguments filled in, every item checked, the net effect written once.

Every declared argument must be given, and nothing else. Every component must render valid
(``engine.bundles.forms``; an argument that makes one invalid is an ``InvalidArgument``,
naming the bundle, the operation, list and index, the component and the argument); written
tuples and attributes must fit the schema (``engine.writes``: Permify's error codes), and an
attribute delete must name a declared attribute; tuple deletes are not checked against the
schema, so tuples an older schema admitted can still be removed. Operations apply in order and,
inside one, in Permify's order: relationship writes, attribute writes, relationship deletes,
attribute deletes. So a delete wins over a write of the same item in the same operation, and a
later operation's write wins over an earlier delete. The net effect is one store write at one
revision; on any error nothing is written.

Concurrency: synchronous, like the rest of the engine. A run reads the bundle, then writes once:
a run racing an upsert of the same bundle uses whichever definition it read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import TypeVar

from dsl.schema import Schema
from engine.bundles.codec import read_bundle
from engine.bundles.forms import (
    FORMS,
    ArgumentProblem,
    ItemTemplate,
    parse_item,
    render_attribute,
    render_attribute_key,
    render_tuple,
)
from engine.bundles.model import (
    BundleTooLarge,
    DataBundle,
    InvalidArgument,
    InvalidBundle,
    MissingArgument,
)
from engine.errors import InvalidWrite
from engine.hooks import RawWriter
from engine.writes import check_attribute, check_attribute_key, check_tuple
from storage.base import Attribute, AttributeKey, Changes, SnapToken, Tuple

T = TypeVar("T")


def _check_arguments(bundle: DataBundle, arguments: Mapping[str, str]) -> None:
    declared = ", ".join(f"`{a}`" for a in bundle.arguments) or "(none)"
    missing = [a for a in bundle.arguments if a not in arguments]
    if missing:
        raise MissingArgument(
            f"bundle `{bundle.name}` needs every declared argument; missing: "
            f"{', '.join(f'`{a}`' for a in missing)} (declared: {declared})",
        )
    unknown = sorted(set(arguments) - set(bundle.arguments))
    if unknown:
        raise InvalidArgument(
            f"bundle `{bundle.name}` declares no argument "
            f"{', '.join(f'`{a}`' for a in unknown)} (declared: {declared})",
        )


def _items(
    bundle: DataBundle,
    arguments: Mapping[str, str],
    o: int,
    list_name: str,
    render: Callable[[ItemTemplate, Mapping[str, str]], T],
) -> Iterator[tuple[str, T]]:
    """Render one list of operation ``o``: (where it came from, the item) pairs."""
    strings: tuple[str, ...] = getattr(bundle.operations[o], list_name)
    for j, text in enumerate(strings):
        at = f"bundle `{bundle.name}`: operations[{o}].{list_name}[{j}] `{text}`"
        try:
            rendered = render(parse_item(text, FORMS[list_name]), arguments)
        except ArgumentProblem as exc:
            if not exc.arguments:  # literal text: a record written before a check existed
                raise InvalidBundle(f"{at}: the stored template is invalid: {exc}") from exc
            raise InvalidArgument(f"{at}: {exc}") from exc
        except (ValueError, KeyError) as exc:  # likewise
            raise InvalidBundle(f"{at}: the stored template is invalid: {exc}") from exc
        yield at, rendered


def _checked(at: str, check: Callable[[], None]) -> None:
    """Run a schema check; its InvalidWrite keeps its class and gains the location."""
    try:
        check()
    except InvalidWrite as exc:
        raise type(exc)(f"{at}: {exc}") from exc


def _changes(bundle: DataBundle, schema: Schema, arguments: Mapping[str, str]) -> Changes:
    """The net effect of the operations in order, checked against ``schema``."""
    tuples: dict[Tuple, bool] = {}  # True: written, False: deleted (the last one wins)
    attributes: dict[AttributeKey, Attribute | None] = {}  # None: deleted
    for o in range(len(bundle.operations)):
        for at, t in _items(bundle, arguments, o, "relationships_write", render_tuple):
            _checked(at, partial(check_tuple, schema, t))
            tuples[t] = True
        for at, a in _items(bundle, arguments, o, "attributes_write", render_attribute):
            _checked(at, partial(check_attribute, schema, a))
            attributes[a.key] = a
        for _, t in _items(bundle, arguments, o, "relationships_delete", render_tuple):
            tuples[t] = False
        for at, key in _items(bundle, arguments, o, "attributes_delete", render_attribute_key):
            _checked(at, partial(check_attribute_key, schema, key))
            attributes[key] = None
    return Changes(
        write_tuples=[t for t, written in tuples.items() if written],
        delete_tuples=[t for t, written in tuples.items() if not written],
        write_attributes=[a for a in attributes.values() if a is not None],
        delete_attributes=[key for key, a in attributes.items() if a is None],
    )


def run_bundle(
    writer: RawWriter,
    schema: Schema,
    tenant: str,
    name: str,
    arguments: Mapping[str, str],
) -> SnapToken:
    """Run the bundle ``name`` of ``tenant`` with ``arguments``: one atomic write; its token.

    ``schema`` is the compiled schema written data is checked against (the API passes the
    tenant's head). Raises BundleNotFound; MissingArgument for a missing argument;
    InvalidArgument for an undeclared one or a rendered string that does not parse;
    BundleTooLarge for more items than one write may hold; InvalidWrite for data the schema
    rejects. Nothing is written on any error. The bundle is read from ``writer``'s store and the
    write goes through ``writer``: the app's, with the write hooks of the layers above the
    engine, so that no bundle write can skip them.
    """
    store = writer.store
    bundle = read_bundle(store, tenant, name)
    _check_arguments(bundle, arguments)
    # Every string is one item whatever the arguments, so the count is the bundle's own.
    if bundle.size > store.max_write_items:
        raise BundleTooLarge(
            f"bundle `{name}` has {bundle.size} items (relationships and attributes to write "
            f"or delete, over all operations); one write may hold at most "
            f"{store.max_write_items}: split it into smaller bundles",
        )
    changes = _changes(bundle, schema, arguments)
    return writer.write(tenant, changes)
