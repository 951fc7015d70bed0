"""Storing bundle definitions: checking a bundle when it is written, and writing, reading and
deleting it.

When a bundle is *written* every string is checked: its template (``engine.bundles.template``),
its shape and literal text (``engine.bundles.forms``), and that it references only arguments the
bundle declares. All problems of one write are reported together, each naming the bundle, the
operation, the list and the index.

Storage. Each bundle is one record (keyspace ``bundles``, key ``(name,)``) holding compact JSON
with sorted keys; records are not versioned, so a bundle read always sees the latest definition.

Concurrency: synchronous, like the rest of the engine. Writing several bundles is one atomic
store write; a delete checks and removes in one ``Store.transact``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from engine.bundles.forms import FORMS, literal_problems, split
from engine.bundles.model import (
    LISTS,
    BundleNotFound,
    DataBundle,
    DuplicateBundle,
    InvalidBundle,
    Operation,
)
from engine.bundles.template import segments
from engine.notation import NAME_PATTERN
from storage.base import Changes, Record, SnapshotReader, Store

#: The records keyspace that holds a tenant's bundles.
KEYSPACE = "bundles"
#: One rejected write reports at most this many problems (a pathological request cannot make
#: the message unbounded).
MAX_PROBLEMS = 100


def _name_problem(name: str, what: str) -> str | None:
    if not name:
        return f"{what} is empty"
    if not NAME_PATTERN.fullmatch(name):
        return (
            f"{what} {name!r} is invalid: expected letters, digits and `_`, "
            "not starting with a digit, at most 64 characters"
        )
    return None


def _bundle_problems(index: int, bundle: DataBundle) -> Iterator[str]:
    """Every problem of one bundle of a write (``index``: its place in the request)."""
    where = f"bundle `{bundle.name}`" if bundle.name else f"bundles[{index}]"
    problem = _name_problem(bundle.name, "the bundle name")
    if problem is not None:
        yield f"{where}: {problem}"
    first: dict[str, int] = {}
    for i, argument in enumerate(bundle.arguments):
        problem = _name_problem(argument, f"arguments[{i}]")
        if problem is not None:
            yield f"{where}: {problem}"
        elif argument in first:
            yield (
                f"{where}: argument `{argument}` is declared twice "
                f"(arguments[{first[argument]}] and arguments[{i}])"
            )
        else:
            first[argument] = i
    declared = ", ".join(f"`{a}`" for a in first) or "(none)"
    for o, operation in enumerate(bundle.operations):
        for list_name, strings in operation.lists():
            for j, text in enumerate(strings):
                at = f"{where}: operations[{o}].{list_name}[{j}] `{text}`"
                try:
                    found = segments(text)
                except ValueError as exc:
                    yield f"{at}: {exc}"
                    continue
                try:
                    item = split(found, FORMS[list_name])
                except ValueError as exc:
                    yield f"{at}: {exc}"
                else:
                    for problem in literal_problems(item):
                        yield f"{at}: {problem}"
                for name in dict.fromkeys(s.argument for s in found if s.argument):
                    if name not in first:
                        yield f"{at}: `{name}` is not a declared argument; declared: {declared}"


def _problems_message(problems: Sequence[str], total: int) -> str:
    if total == 1:
        return problems[0]
    more = f"; and {total - len(problems)} more" if total > len(problems) else ""
    return f"{total} problems: " + "; ".join(problems) + more


def _check_name(name: str) -> None:
    problem = _name_problem(name, "the bundle name")
    if problem is not None:
        raise InvalidBundle(problem)


# --- storing -----------------------------------------------------------------------------------


def _encode(bundle: DataBundle) -> bytes:
    document = {
        "name": bundle.name,
        "arguments": list(bundle.arguments),
        "operations": [
            {name: list(strings) for name, strings in op.lists()} for op in bundle.operations
        ],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _decode(raw: bytes) -> DataBundle:
    document = json.loads(raw)
    return DataBundle(
        document["name"],
        tuple(document["arguments"]),
        tuple(
            Operation(**{name: tuple(op.get(name, ())) for name in LISTS})
            for op in document["operations"]
        ),
    )


def write_bundles(store: Store, tenant: str, bundles: Sequence[DataBundle]) -> list[str]:
    """Create or replace ``bundles`` (by name) in one atomic write; their names, in order.

    Raises DuplicateBundle when one name appears twice in ``bundles``, InvalidBundle (listing
    every problem) for an invalid name or template, or for no bundles at all. Nothing is written
    on error.
    """
    if not bundles:
        raise InvalidBundle("no bundles to write: give at least one")
    first: dict[str, int] = {}
    duplicates: list[str] = []
    for k, bundle in enumerate(bundles):
        if bundle.name in first:
            duplicates.append(
                f"bundle name {bundle.name!r} appears twice in one write "
                f"(bundles[{first[bundle.name]}] and bundles[{k}])"
            )
        else:
            first[bundle.name] = k
    if duplicates:
        raise DuplicateBundle(
            _problems_message(duplicates[:MAX_PROBLEMS], len(duplicates)),
            duplicates[:MAX_PROBLEMS],
        )
    problems: list[str] = []
    total = 0
    for k, bundle in enumerate(bundles):
        for problem in _bundle_problems(k, bundle):
            total += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(problem)
    if problems:
        raise InvalidBundle(_problems_message(problems, total), problems)
    store.write(
        tenant,
        Changes(put_records=[Record(KEYSPACE, (b.name,), _encode(b)) for b in bundles]),
    )
    return [b.name for b in bundles]


def read_bundle(store: Store, tenant: str, name: str) -> DataBundle:
    """The bundle ``name`` of ``tenant``, as written; BundleNotFound when there is none."""
    _check_name(name)
    raw = store.reader(tenant).record(KEYSPACE, (name,))
    if raw is None:
        raise BundleNotFound(tenant, name)
    return _decode(raw)


def delete_bundle(store: Store, tenant: str, name: str) -> str:
    """Delete the bundle ``name``; return its name. BundleNotFound when there is none (as
    Permify)."""
    _check_name(name)

    def build(reader: SnapshotReader) -> Changes:
        if reader.record(KEYSPACE, (name,)) is None:
            raise BundleNotFound(tenant, name)
        return Changes(delete_records=[(KEYSPACE, (name,))])

    store.transact(tenant, build)
    return name
