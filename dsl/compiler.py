"""AST -> compiled `Schema`, reporting every semantic error at once.

The passes, in order, each reporting into one `Reporter` with the position of the offending name:

* `dsl.names`: declared names (two namespaces, duplicates, length) and declared types;
* `dsl.references`: relations' subject types and permission operands resolved and compiled,
  rule calls bound to parameters;
* `dsl.rule_bodies`: each rule body CEL that parses and is boolean on its parameters' types;
* `dsl.reference_graph`: no cycle of computed references, no chain of them deeper than
  `MAX_REFERENCE_DEPTH`.

Only a schema without any diagnostic is built, with the indexes the engine reads (who a subject
type enters, what depends on each relation). The limits are in `dsl.limits`.
"""

from __future__ import annotations

import functools
from collections import defaultdict

from dsl import ast
from dsl.collector import gc_paused
from dsl.limits import (
    MAX_DIAGNOSTICS,
    MAX_NAME_LENGTH,
    MAX_REFERENCE_DEPTH,
    MAX_SUBJECT_TYPES,
    MAX_SUGGESTION_WORK,
)
from dsl.names import KIND_OF, declare
from dsl.parser import parse
from dsl.reference_graph import check_chains, check_cycles
from dsl.references import References
from dsl.reporter import Reporter
from dsl.rule_bodies import cel_type_name, compile_rule, keeps_verbatim, normalise_rule_body
from dsl.schema import (
    AttributeDef,
    ComputedAttribute,
    ComputedUserSet,
    Deferred,
    Edge,
    EdgeKind,
    EntityDef,
    Node,
    RelationRef,
    RuleCall,
    Schema,
    TupleToUserSet,
)

__all__ = [
    "MAX_DIAGNOSTICS",
    "MAX_NAME_LENGTH",
    "MAX_REFERENCE_DEPTH",
    "MAX_SUBJECT_TYPES",
    "MAX_SUGGESTION_WORK",
    "cel_type_name",
    "compile_schema",
    "keeps_verbatim",
    "load",
    "normalise_rule_body",
]


def load(source: str | bytes) -> Schema:
    """Parse and compile schema text. Raises `SchemaError` with every problem found."""
    return compile_schema(parse(source), source)


def compile_schema(tree: ast.SchemaAst, source: str | bytes = "") -> Schema:
    """Compile a parsed schema; ``source`` (the text parsed) fills in each error's source line."""
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    with gc_paused():
        return _compile(tree, text.removeprefix("\ufeff"))


def _compile(tree: ast.SchemaAst, text: str) -> Schema:
    report = Reporter(text)
    names = declare(tree, report)
    references = References(names, report)
    relations = {name: references.relations(e) for name, e in names.entities.items()}
    rules = {
        name: compile_rule(r, names.rule_params[name], report) for name, r in names.rules.items()
    }
    entities: dict[str, EntityDef] = {}
    for name, entity in names.entities.items():
        permissions = references.permissions(entity)
        members = names.members[name]
        entities[name] = EntityDef(
            name=name,
            relations=relations[name],
            permissions=permissions,
            attributes={
                m.name: AttributeDef(m.name, names.attribute_types[(name, m.name)])
                for m in members.values()
                if isinstance(m, ast.Attribute) and (name, m.name) in names.attribute_types
            },
            references={n: KIND_OF[type(m)] for n, m in members.items()},
        )
    check_cycles(names.members, references.computed_refs, report)
    check_chains(names.members, references.computed_refs, references.leaves, report)
    report.raise_if_any()
    return Schema(
        entities=entities,
        rules=rules,
        subject_entrances=_subject_entrances(entities),
        dependents=Deferred(functools.partial(_dependents, entities, references.leaves)),
    )


def _subject_entrances(
    entities: dict[str, EntityDef],
) -> dict[RelationRef, tuple[tuple[str, str], ...]]:
    entrances: defaultdict[RelationRef, list[tuple[str, str]]] = defaultdict(list)
    for entity in entities.values():
        for relation in entity.relations.values():
            for ref in relation.subject_types:
                entrances[ref].append((entity.name, relation.name))
    return {ref: tuple(found) for ref, found in entrances.items()}


def _dependents(
    entities: dict[str, EntityDef], leaves: dict[tuple[str, str], list[Node]]
) -> dict[tuple[str, str], tuple[Edge, ...]]:
    # Plain tuples while collecting: hashing them is much cheaper than hashing dataclasses.
    found: defaultdict[tuple[str, str], dict[tuple[EdgeKind, str, str, str], None]]
    found = defaultdict(dict)
    relation_edge, computed, walk = (
        EdgeKind.SUBJECT_RELATION, EdgeKind.COMPUTED, EdgeKind.TUPLE_TO_USERSET
    )
    for entity in entities.values():
        name = entity.name
        for relation in entity.relations.values():
            for ref in relation.subject_types:
                if ref.relation:
                    found[(ref.type, ref.relation)][(relation_edge, name, relation.name, "")] = None
        for permission in entity.permissions.values():
            edge = (computed, name, permission.name, "")
            for leaf in leaves[(name, permission.name)]:
                if isinstance(leaf, ComputedUserSet):
                    found[(name, leaf.relation)][edge] = None
                elif isinstance(leaf, ComputedAttribute):
                    found[(name, leaf.name)][edge] = None
                elif isinstance(leaf, RuleCall):
                    for argument in leaf.arguments:
                        found[(name, argument)][edge] = None
                elif isinstance(leaf, TupleToUserSet):
                    tupleset = entity.relations[leaf.tupleset]
                    via = (walk, name, permission.name, leaf.tupleset)
                    for target in dict.fromkeys(ref.type for ref in tupleset.subject_types):
                        found[(target, leaf.computed)][via] = None
    return {source: tuple(Edge(*e) for e in edges) for source, edges in found.items()}
