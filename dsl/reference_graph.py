"""Checks on the graph of computed references within each entity (``edit = owner``, ``view =
edit or viewer``: a permission naming another member of its own entity, with no relation hop).

* cycles: a permission that reaches itself through computed references alone could never be
  evaluated, so it is an error here rather than a depth error at check time;
* reference chains: a permission whose computed references (``a = b``, ``b = c``, ... ending at a
  relation, attribute or rule) form a chain of more than `MAX_REFERENCE_DEPTH` references could
  never be evaluated either: a check follows every reference of the chain, one unit of depth
  each, with no data in between, and no request gets that much depth.

Both walks are iterative, so a graph of any depth is checked without recursion.
"""

from __future__ import annotations

from dsl import ast
from dsl.limits import MAX_REFERENCE_DEPTH
from dsl.reporter import Reporter
from dsl.schema import Node, RuleCall


def check_cycles(
    members_of: dict[str, dict[str, ast.Member]],
    computed_refs: dict[str, dict[str, list[tuple[str, ast.Pos]]]],
    report: Reporter,
) -> None:
    """Report every permission cycle made of computed references only."""
    for entity_name, members in members_of.items():
        graph = {
            name: [(r, pos) for r, pos in refs if isinstance(members.get(r), ast.Permission)]
            for name, refs in computed_refs.get(entity_name, {}).items()
        }
        reported: set[frozenset[str]] = set()
        for cycle in _cycles(graph):
            key = frozenset(name for name, _ in cycle)
            if key in reported:
                continue
            reported.add(key)
            start = min(cycle, key=lambda step: members[step[0]].name_pos)
            index = cycle.index(start)
            ordered = cycle[index:] + cycle[:index]
            loop = " -> ".join([name for name, _ in ordered] + [ordered[0][0]])
            report.error(
                ordered[0][1],
                f"permission `{ordered[0][0]}` of `{entity_name}` depends on itself with no "
                f"relation in between ({loop}); it could never be evaluated",
            )


def check_chains(
    members_of: dict[str, dict[str, ast.Member]],
    computed_refs: dict[str, dict[str, list[tuple[str, ast.Pos]]]],
    leaves: dict[tuple[str, str], list[Node]],
    report: Reporter,
) -> None:
    """Report each permission that starts a chain of more than `MAX_REFERENCE_DEPTH`
    computed references. Only where a chain starts: the permissions further along it are
    too deep for the same reason, and fixing the chain fixes them."""
    for entity_name, refs in computed_refs.items():
        members = members_of[entity_name]
        graph: dict[str, list[str]] = {}
        ends: dict[str, str] = {}
        for name, operands in refs.items():
            graph[name] = [r for r, _ in operands if isinstance(members.get(r), ast.Permission)]
            end = next(
                (r for r, _ in operands
                 if isinstance(members.get(r), ast.Relation | ast.Attribute)),
                None,
            )
            if end is None:
                end = next(
                    (f"{leaf.rule}(…)" for leaf in leaves[(entity_name, name)]
                     if isinstance(leaf, RuleCall)),
                    None,
                )
            if end is not None:
                ends[name] = end
        chains = _longest_chains(graph, ends)
        too_deep = [n for n, (length, _) in chains.items() if length > MAX_REFERENCE_DEPTH]
        inner = {t for n in too_deep for t in graph[n]}
        for start in too_deep:
            if start in inner:
                continue
            names = [start]
            following: str | None = start
            while following in chains:
                following = chains[following][1]
                if following is not None:
                    names.append(following)
            shown = " -> ".join(names if len(names) <= 8 else [*names[:3], "…", *names[-3:]])
            member = members[start]
            report.error(
                member.name_pos,
                f"reference chain deeper than {MAX_REFERENCE_DEPTH}: {shown} "
                f"({chains[start][0]} references; a check spends one unit of depth on each, "
                "more than any request may use); shorten the chain",
            )


def _longest_chains(
    graph: dict[str, list[str]], ends: dict[str, str]
) -> dict[str, tuple[int, str | None]]:
    """For each node of ``graph`` (a permission -> the permissions it references), how many
    references its longest chain has, and the next name on that chain (None: no reference).
    A node in ``ends`` references that relation, attribute or rule: a chain of one. An edge that
    closes a cycle (reported on its own) is ignored. Iterative: chains may be any length."""
    found: dict[str, tuple[int, str | None]] = {}
    on_path: set[str] = set()
    for root, references in graph.items():
        if root in found:
            continue
        on_path.add(root)
        stack = [(root, iter(references))]
        while stack:
            node, targets = stack[-1]
            target = next(targets, None)
            if target is not None:
                if target not in found and target not in on_path:
                    on_path.add(target)
                    stack.append((target, iter(graph[target])))
                continue
            stack.pop()
            on_path.discard(node)
            best: tuple[int, str | None] = (1, ends[node]) if node in ends else (0, None)
            for t in graph[node]:
                if t in found and found[t][0] + 1 > best[0]:
                    best = (found[t][0] + 1, t)
            found[node] = best
    return found


def _cycles(graph: dict[str, list[tuple[str, ast.Pos]]]) -> list[list[tuple[str, ast.Pos]]]:
    """Cycles found by depth-first search; each is a list of (node, position of its edge on)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    found: list[list[tuple[str, ast.Pos]]] = []
    for root, edges in graph.items():
        if colour[root] != white:
            continue
        colour[root] = grey
        path: list[tuple[str, ast.Pos | None]] = [(root, None)]
        iterators = [iter(edges)]
        while iterators:
            step = next(iterators[-1], None)
            if step is None:
                iterators.pop()
                node, _ = path.pop()
                colour[node] = black
                continue
            target, pos = step
            path[-1] = (path[-1][0], pos)
            if colour[target] == grey:
                start = next(i for i, (n, _) in enumerate(path) if n == target)
                found.append([(n, p) for n, p in path[start:] if p is not None])
            elif colour[target] == white:
                colour[target] = grey
                path.append((target, None))
                iterators.append(iter(graph[target]))
    return found
