"""How much of a schema a validation file exercises (``permify coverage``).

Per entity, as Permify computes it:

* relationships: the declared ``entity#relation@type[#relation]`` combinations that some tuple in
  ``relationships`` uses;
* attributes: the declared ``entity#attribute`` names that some item in ``attributes`` sets;
* assertions, per scenario: the entity's permissions named in that scenario's ``checks`` or
  ``entity_filters`` assertions (``subject_filters`` do not count).

Percentages are whole numbers rounded down; nothing to cover counts as 100%. Totals average the
per-entity percentages (assertions: over every entity and scenario pair), again rounded down.
Where Permify is quirky, this is strict and says so: ``#...`` counts as a plain subject (Permify
would count ``folder#...`` as its own, undeclared combination), and a file without scenarios is
measured as if it had one empty scenario (Permify divides by zero).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from api.validate import Shape
from dsl.schema import Schema

NO_SCENARIOS = "(no scenarios)"


def percent(total: Sequence[str], uncovered: Sequence[str]) -> int:
    """Covered share of ``total`` in whole percent, rounded down; 100 when there is nothing."""
    if not total:
        return 100
    return (len(total) - len(uncovered)) * 100 // len(total)


@dataclass(frozen=True, slots=True)
class ScenarioCoverage:
    """Assertion coverage of one entity by one scenario."""

    scenario: str
    percent: int
    uncovered: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EntityCoverage:
    entity: str
    relationships: int
    uncovered_relationships: tuple[str, ...]
    attributes: int
    uncovered_attributes: tuple[str, ...]
    assertions: tuple[ScenarioCoverage, ...]


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """Per-entity coverage and the three totals (whole percent)."""

    file: str
    entities: tuple[EntityCoverage, ...]
    relationships: int
    attributes: int
    assertions: int

    def below(
        self, *, relationships: int = 0, attributes: int = 0, assertions: int = 0
    ) -> list[str]:
        """A line for every total under its threshold (empty when all are met)."""
        found = []
        for name, total, threshold in (
            ("relationships", self.relationships, relationships),
            ("attributes", self.attributes, attributes),
            ("assertions", self.assertions, assertions),
        ):
            if total < threshold:
                found.append(f"{name} coverage {total}% is below the required {threshold}%")
        return found

    def lines(self) -> list[str]:
        """The report as plain lines, one fact per line, each starting with the file."""
        out: list[str] = []
        for e in self.entities:
            head = f"{self.file}: entity {e.entity}:"
            out.append(
                f"{head} relationships {e.relationships}%{_uncovered(e.uncovered_relationships)}"
            )
            out.append(f"{head} attributes {e.attributes}%{_uncovered(e.uncovered_attributes)}")
            for s in e.assertions:
                out.append(
                    f'{head} assertions {s.percent}% in scenario "{s.scenario}"'
                    f"{_uncovered(s.uncovered)}"
                )
        out.append(
            f"{self.file}: total: relationships {self.relationships}%, "
            f"attributes {self.attributes}%, assertions {self.assertions}%"
        )
        return out


def _uncovered(items: Sequence[str]) -> str:
    return f", uncovered: {', '.join(items)}" if items else ""


def _average(percents: Iterable[int], *, empty: int) -> int:
    values = list(percents)
    return sum(values) // len(values) if values else empty


def coverage(shape: Shape, schema: Schema) -> CoverageReport:
    """Coverage of ``schema`` (compiled from ``shape``) by the shape's data and scenarios."""
    used_relationships = {
        f"{t.entity_type}#{t.relation}@{t.subject_type}"
        + (f"#{t.subject_relation}" if t.subject_relation else "")
        for t in shape.relationships
    }
    used_attributes = {f"{a.entity_type}#{a.name}" for a in shape.attributes}
    asserted: list[tuple[str, set[str]]] = []
    for scenario in shape.scenarios:
        names = {f"{c.entity.type}#{name}" for c in scenario.checks for name in c.assertions}
        names |= {
            f"{f.entity_type}#{name}" for f in scenario.entity_filters for name in f.assertions
        }
        asserted.append((scenario.name, names))

    entities: list[EntityCoverage] = []
    for name, definition in schema.entities.items():
        declared_relationships = [
            f"{name}#{relation.name}@{ref}"
            for relation in definition.relations.values()
            for ref in relation.subject_types
        ]
        missing_relationships = [r for r in declared_relationships if r not in used_relationships]
        declared_attributes = [f"{name}#{attribute}" for attribute in definition.attributes]
        missing_attributes = [a for a in declared_attributes if a not in used_attributes]
        permissions = [f"{name}#{permission}" for permission in definition.permissions]
        scenarios = asserted or [(NO_SCENARIOS, set())]
        per_scenario = []
        for scenario_name, names in scenarios:
            missing = [p for p in permissions if p not in names]
            per_scenario.append(
                ScenarioCoverage(scenario_name, percent(permissions, missing), tuple(missing))
            )
        entities.append(
            EntityCoverage(
                entity=name,
                relationships=percent(declared_relationships, missing_relationships),
                uncovered_relationships=tuple(missing_relationships),
                attributes=percent(declared_attributes, missing_attributes),
                uncovered_attributes=tuple(missing_attributes),
                assertions=tuple(per_scenario),
            )
        )
    return CoverageReport(
        file=shape.file,
        entities=tuple(entities),
        relationships=_average((e.relationships for e in entities), empty=100),
        attributes=_average((e.attributes for e in entities), empty=100),
        assertions=_average((s.percent for e in entities for s in e.assertions), empty=100),
    )
