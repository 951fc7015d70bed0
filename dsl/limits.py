"""How far a schema may go: every limit the parser and the compiler enforce.

Each one bounds the time or the recursion a hostile schema could cost, and each is reported as a
positioned diagnostic, never as a crash or a long run. Rule bodies have limits of their own, in
`dsl.rule_cost`.
"""

from __future__ import annotations

from typing import Final

#: Longest schema text, in UTF-8 bytes. Parsing and compiling take about 1.5 s a MiB (more for
#: the engine's first use of it), so 512 KiB keeps any schema near a second; real ones are a few
#: KiB.
MAX_SCHEMA_BYTES: Final = 512 * 1024

#: Operators nested deeper than this are refused, so every later walk over an expression
#: (compiler, formatter, comparison of compiled schemas, the engine) may recurse with room to
#: spare: Python's default limit of 1000 frames breaks equality of rewrite trees near 250 levels.
MAX_EXPRESSION_DEPTH: Final = 128

#: Syntax errors past this many are not collected (the last one says so).
MAX_SYNTAX_ERRORS: Final = 100

#: Longest name of an entity, rule, member or parameter.
MAX_NAME_LENGTH: Final = 64

#: Past this many errors the rest are not collected: a pathological schema cannot make the
#: compiler spend quadratic time on suggestions and quoted lines.
MAX_DIAGNOSTICS: Final = 100

#: Most computed references one permission may chain (``q0 = q1``, ``q1 = q2``, ... ``qn =
#: viewer`` is n + 1 references). A check spends one unit of depth on each, with no data in
#: between, and the engine gives a request at most about 225 units (`Engine.depth_cap`, with
#: Python's default recursion limit): a longer chain could never answer. 128 leaves room for
#: the data hops after the chain, and equals the operator nesting limit.
MAX_REFERENCE_DEPTH: Final = 128

#: Most subject types one relation may admit. A ``rel.name`` walk is checked, indexed for
#: lookups and followed once per type ``rel`` admits, so a schema's cost grows with walks times
#: types: unbounded, 200 KiB of schema (3,000 types, 3,000 walks) took 16 s to compile.
MAX_SUBJECT_TYPES: Final = 64

#: Names the compiler may compare, over a whole schema, while looking for "did you mean"
#: suggestions: each one costs time linear in the names it is picked from, and a hundred errors
#: among 30,000 entity names took a minute. Past this, errors come without suggestions.
MAX_SUGGESTION_WORK: Final = 50_000
