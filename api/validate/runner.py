"""Run a parsed validation file: what ``permify validate`` does.

``run`` compiles the schema (errors point into the YAML file, or into the schema file it
names), validates every relationship and attribute against it (any invalid one aborts the run),
writes them into a fresh store (tenant ``t1``) and asks the Engine every scenario's questions.
The ``Report`` lists each mismatch with its scenario, query, expected and actual answer; an
engine error is the answer of that assertion, never an abort. The extension queries compare
``x_expand`` and ``x_subject_permission`` with the expand and subject-permission answers, and
``x_page_size`` pages a lookup and concatenates the pages.

The file is Permify's format, so answers are compared in Permify's wire forms (the expand tree
as the HTTP API renders it, write errors by Permify's codes): this runs at the edge, beside the
API. Which backend holds the data is the caller's choice: it passes a ``StoreFactory``, called once
per run for a fresh, empty store that the run closes when it ends. Single-threaded; every
question to the engine is asked in ``_Scenarios``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from api.errors import reason_of
from api.models import expand_json
from api.validate.loader import load_shape
from api.validate.shape import (
    CheckCase,
    EntityFilterCase,
    ExpandCase,
    Pos,
    Scenario,
    SchemaFileError,
    Shape,
    SubjectFilterCase,
    SubjectPermissionCase,
    ValidationFileError,
)
from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.schema import Schema
from engine.engine import Engine, EngineConfig
from engine.errors import EngineError, InvalidWrite
from engine.types import DEFAULT_LOOKUP_PAGE_SIZE, Context, LookupPage, RequestOptions, subject_text
from engine.writes import check_attribute, check_tuple
from storage.base import DEFAULT_TENANT, Attribute, Changes, Store, Tuple
from storage.errors import StorageError

#: The API refuses smaller depths; so does the runner, as an error of the assertion.
MIN_DEPTH = 3
TENANT = DEFAULT_TENANT

#: Makes the fresh, empty store one run writes its data into (and closes).
StoreFactory = Callable[[], Store]

P = ParamSpec("P")
CaseT = TypeVar("CaseT", bound="_Case")
ExpectedT = TypeVar("ExpectedT")


def compile_shape_schema(shape: Shape) -> Schema:
    """Compile the shape's schema; SchemaFileError places every diagnostic in the file."""
    try:
        return load(shape.schema.text)
    except SchemaError as exc:
        raise SchemaFileError([shape.schema.problem(d) for d in exc.diagnostics]) from exc


def check_writes(shape: Shape, schema: Schema) -> None:
    """Validate every relationship and attribute against ``schema`` (not the unvalidated ones);
    raise ValidationFileError listing each rejected item with Permify's error code."""
    problems: list[str] = []

    def rejected(pos: Pos, where: str, exc: InvalidWrite) -> None:
        problems.append(f"{shape.file}:{pos.line}:{pos.column}: {where}: {reason_of(exc)}: {exc}")

    for i, (t, pos) in enumerate(zip(shape.relationships, shape.relationships_at, strict=True)):
        try:
            check_tuple(schema, t)
        except InvalidWrite as exc:
            rejected(pos, f"relationships[{i}]", exc)
    for i, (a, pos) in enumerate(zip(shape.attributes, shape.attributes_at, strict=True)):
        try:
            check_attribute(schema, a)
        except InvalidWrite as exc:
            rejected(pos, f"attributes[{i}]", exc)
    if problems:
        raise ValidationFileError(problems)


@dataclass(frozen=True, slots=True)
class Failure:
    """One assertion whose answer differed from the file's expectation (or raised)."""

    scenario: str
    query: str
    expected: str
    got: str

    def __str__(self) -> str:
        return (
            f'scenario "{self.scenario}": {self.query} -> '
            f"expected: {self.expected}, got: {self.got}"
        )


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of running one file: counts and every failure, in file order."""

    file: str
    scenarios: int
    assertions: int
    failures: tuple[Failure, ...]
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        counts = f"{self.scenarios} scenarios, {self.assertions} assertions"
        if self.ok:
            return f"SUCCESS ({counts})"
        return f"FAILED ({self.failed} of {self.assertions} assertions failed; {counts})"


class _PagingError(Exception):
    """A lookup's pages broke the paging contract (oversized page, cursor that came back)."""


def _lookup_all(fetch: Callable[[int, str], LookupPage], page_size: int | None) -> list[str]:
    """Follow cursors to the end, concatenating; ``page_size`` is the x_page_size asked for."""
    size = page_size or DEFAULT_LOOKUP_PAGE_SIZE
    ids: list[str] = []
    cursor = ""
    seen: set[str] = set()
    while True:
        page = fetch(size, cursor)
        if len(page.ids) > size:
            raise _PagingError(f"a page held {len(page.ids)} ids, more than page_size {size}")
        ids.extend(page.ids)
        if not page.cursor:
            return ids
        if page.cursor in seen:
            raise _PagingError(f"cursor {page.cursor!r} came back twice")
        seen.add(page.cursor)
        cursor = page.cursor


def _ids(ids: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(ids)) + "]"


def _verdict(allowed: bool) -> str:
    return "ALLOWED" if allowed else "DENIED"


def _verdicts(results: Mapping[str, bool]) -> str:
    return "{" + ", ".join(f"{k}: {_verdict(v)}" for k, v in sorted(results.items())) + "}"


def _plain(value: Any) -> Any:
    """Plain data for comparing expand trees: mappings, lists and scalars; fields holding a proto3
    default (null, "", 0, false, empty list or mapping) are dropped, since protobuf does not
    tell them from absent ones."""
    if is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, Mapping):
        entries = {str(k): _plain(v) for k, v in value.items()}
        return {k: v for k, v in entries.items() if v not in (None, "", 0, False, [], {})}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.name
    return value


def _tree(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


class _Scenarios:
    """Asks the engine every question of the shape's scenarios and records the mismatches."""

    def __init__(self, engine: Engine, schema_version: str) -> None:
        self.engine = engine
        self.version = schema_version
        self.failures: list[Failure] = []
        self.assertions = 0

    def run(self, shape: Shape) -> Report:
        for scenario in shape.scenarios:
            self.scenario(scenario)
        return Report(
            shape.file,
            len(shape.scenarios),
            self.assertions,
            tuple(self.failures),
            shape.warnings,
        )

    def expect(self, scenario: Scenario, query: str, expected: str, got: str) -> None:
        self.assertions += 1
        if got != expected:
            self.failures.append(Failure(scenario.name, query, expected, got))

    @staticmethod
    def answer(depth: int, ask: Callable[P, str], *args: P.args, **kwargs: P.kwargs) -> str:
        """``ask(...)``, or the error that is the answer instead: a depth below the minimum, an
        engine or storage error, a lookup that broke the paging contract."""
        if depth < MIN_DEPTH:
            return f"error: depth must be greater than or equal to {MIN_DEPTH}"
        try:
            return ask(*args, **kwargs)
        except (EngineError, StorageError, _PagingError) as exc:
            return f"error: {type(exc).__name__}: {exc}"

    def each(
        self,
        scenario: Scenario,
        case: CaseT,
        ask: Callable[[CaseT, str], str],
        expected: Mapping[str, ExpectedT],
        render: Callable[[ExpectedT], str],
        *,
        parts: tuple[str, str],
    ) -> None:
        """Ask ``ask(case, name)`` for each name of ``expected`` and compare the answer with the
        rendered expectation; the query reads ``parts[0]``, then ``#name``, then ``parts[1]``."""
        head, tail = parts
        for name, want in expected.items():
            got = self.answer(case.depth, ask, case, name)
            self.expect(scenario, f"{head}#{name}{tail}", render(want), got)

    def scenario(self, scenario: Scenario) -> None:
        for check in scenario.checks:
            parts = (
                f"check {check.entity}",
                f"@{subject_text(check.subject)}{_with(check.context)}",
            )
            self.each(scenario, check, self.check, check.assertions, _verdict, parts=parts)
        for ef in scenario.entity_filters:
            options = _with(ef.context)
            if ef.scope is not None:
                options += f" scope {json.dumps(dict(ef.scope), sort_keys=True)}"
            options += _paged(ef.page_size)
            parts = (f"lookup-entity {ef.entity_type}", f"@{subject_text(ef.subject)}{options}")
            self.each(scenario, ef, self.lookup_entity, ef.assertions, _ids, parts=parts)
        for sf in scenario.subject_filters:
            options = _with(sf.context) + _paged(sf.page_size)
            parts = (f"lookup-subject {sf.entity}", f"@{sf.reference}{options}")
            self.each(scenario, sf, self.lookup_subject, sf.assertions, _ids, parts=parts)
        for ex in scenario.expands:
            parts = (f"expand {ex.entity}", _with(ex.context))
            self.each(scenario, ex, self.expand, ex.assertions, _tree, parts=parts)
        for sp in scenario.subject_permissions:
            only = " only_permission" if sp.only_permission else ""
            query = f"subject-permission {sp.entity}@{subject_text(sp.subject)}{only}"
            got = self.answer(sp.depth, self.subject_permission, sp)
            self.expect(scenario, query + _with(sp.context), _verdicts(sp.results), got)

    def options(self, case: _Case) -> RequestOptions:
        """The engine options of ``case``: its depth and context, at the file's schema."""
        return RequestOptions(schema_version=self.version, depth=case.depth, context=case.context)

    def check(self, case: CheckCase, name: str) -> str:
        result = self.engine.check(
            TENANT,
            case.entity,
            name,
            case.subject,
            self.options(case),
        )
        return _verdict(result.allowed)

    def lookup_entity(self, case: EntityFilterCase, name: str) -> str:
        def page(size: int, cursor: str) -> LookupPage:
            return self.engine.lookup_entity(
                TENANT,
                case.entity_type,
                name,
                case.subject,
                self.options(case),
                scope=case.scope,
                page_size=size,
                cursor=cursor,
            )

        return _ids(_lookup_all(page, case.page_size))

    def lookup_subject(self, case: SubjectFilterCase, name: str) -> str:
        def page(size: int, cursor: str) -> LookupPage:
            return self.engine.lookup_subject(
                TENANT,
                case.entity,
                name,
                case.reference,
                self.options(case),
                page_size=size,
                cursor=cursor,
            )

        return _ids(_lookup_all(page, case.page_size))

    def expand(self, case: ExpandCase, name: str) -> str:
        tree = self.engine.expand(
            TENANT,
            case.entity,
            name,
            self.options(case),
        )
        return _tree(expand_json(tree))

    def subject_permission(self, case: SubjectPermissionCase) -> str:
        results = self.engine.subject_permission(
            TENANT,
            case.entity,
            case.subject,
            self.options(case),
            only_permission=case.only_permission,
        )
        return _verdicts(results)


_Case = CheckCase | EntityFilterCase | SubjectFilterCase | ExpandCase | SubjectPermissionCase


def _with(context: Context) -> str:
    return "" if context.is_empty else " with context"


def _paged(page_size: int | None) -> str:
    return "" if page_size is None else f" page_size {page_size}"


def _write_data(store: Store, shape: Shape) -> None:
    """Relationships, unvalidated tuples and attributes, in batches the store accepts.

    Duplicates are dropped (Permify drops them inside one request); for an attribute written
    twice the last value wins, as an upsert would."""
    tuples = dict.fromkeys([*shape.relationships, *(u.tuple for u in shape.unvalidated)])
    attributes = {a.key: a for a in shape.attributes}
    items: list[Tuple | Attribute] = [*tuples, *attributes.values()]
    step = store.max_write_items
    for start in range(0, len(items), step):
        chunk = items[start : start + step]
        store.write(
            TENANT,
            Changes(
                write_tuples=[i for i in chunk if isinstance(i, Tuple)],
                write_attributes=[i for i in chunk if isinstance(i, Attribute)],
            ),
        )


def run(shape: Shape, *, store_factory: StoreFactory, config: EngineConfig | None = None) -> Report:
    """Compile and validate ``shape``, load it into a fresh store from ``store_factory``, then
    run its scenarios. The store is closed when the run ends.

    Raises SchemaFileError or ValidationFileError when the file cannot run (nothing is asked,
    and no store is made).
    """
    schema = compile_shape_schema(shape)
    check_writes(shape, schema)
    store = store_factory()
    try:
        version = store.write_schema(TENANT, shape.schema.text).version
        _write_data(store, shape)
        return _Scenarios(Engine(store, config), version).run(shape)
    finally:
        store.close()


def validate_file(
    path: str | Path, *, store_factory: StoreFactory, config: EngineConfig | None = None
) -> Report:
    """``stonetown validate FILE``: load_shape, then run."""
    return run(load_shape(path), store_factory=store_factory, config=config)
