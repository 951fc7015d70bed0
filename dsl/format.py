"""Canonical printer for schemas: ``stonetown schema fmt``.

The output is idempotent (``format(format(s)) == format(s)``) and preserves meaning (``parse``
of the output compiles to the same `Schema`). Comments are kept: a comment on the lines before a
statement stays before it, one on the statement's own lines follows it. One blank line separates
top-level definitions; inside an entity, blank lines between members are kept (at most one).
Expressions are printed with the fewest parentheses that keep Permify's left-associative,
single-precedence reading: a right operand that is itself an operation is parenthesised.
"""

from __future__ import annotations

from typing import Final

from dsl import ast
from dsl.parser import parse
from dsl.rule_bodies import keeps_verbatim, normalise_rule_body

INDENT: Final = "    "


def format_schema(source: str | bytes) -> str:
    """Parse ``source`` and print it canonically. Raises `SchemaError` if it does not parse."""
    return _Printer(parse(source)).print()


def format_expr(expr: ast.Expr) -> str:
    """An expression in canonical form, without recursion limits beyond the parser's."""
    if isinstance(expr, ast.Path):
        return ".".join(expr.segments)
    if isinstance(expr, ast.Call):
        return f"{expr.rule}({', '.join('.'.join(a.segments) for a in expr.arguments)})"
    left = format_expr(expr.left)
    right = format_expr(expr.right)
    if isinstance(expr.right, ast.Binary):
        right = f"({right})"
    return f"{left} {expr.op.value} {right}"


class _Printer:
    def __init__(self, tree: ast.SchemaAst) -> None:
        self.tree = tree
        self.comments = list(tree.comments)
        self.lines: list[str] = []
        self.last_line = 0  # last source line already printed

    def print(self) -> str:
        for index, definition in enumerate(self.tree.definitions):
            if index:
                self.lines.append("")
            self._leading(definition.pos.line, "", blank_before=index == 0)
            self._blank_if_gap(definition.pos.line)  # keeps a header comment apart
            if isinstance(definition, ast.Entity):
                self._entity(definition)
            else:
                self._rule(definition)
        if self.comments:
            if self.lines:
                self.lines.append("")
            self._leading(None, "", blank_before=False)
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n" if self.lines else ""

    # -- comments -------------------------------------------------------------------------------

    def _take(self, before: int | None) -> list[ast.Comment]:
        """Pop the comments that start before line ``before`` (all of them for None)."""
        taken = [c for c in self.comments if before is None or c.pos.line < before]
        self.comments = self.comments[len(taken):]
        return taken

    def _blank_if_gap(self, line: int) -> None:
        """One blank line before source ``line`` if the source left one after the last line
        printed (and the output does not already end in one)."""
        if self.last_line and line > self.last_line + 1 and self.lines and self.lines[-1]:
            self.lines.append("")

    def _leading(self, line: int | None, indent: str, *, blank_before: bool) -> None:
        """Print the comments found before source ``line`` on their own lines."""
        for comment in self._take(line):
            if blank_before:
                self._blank_if_gap(comment.pos.line)
            self._comment_lines(comment, indent)
            self.last_line = comment.end_line
            blank_before = True

    def _comment_lines(self, comment: ast.Comment, indent: str) -> None:
        text_lines = comment.text.split("\n")
        self.lines.append(indent + text_lines[0].rstrip())
        self.lines.extend(line.rstrip() for line in text_lines[1:])

    def _trailing(self, end_line: int, indent: str) -> None:
        """Attach the comments that sit on a statement's own lines."""
        for comment in self._take(end_line + 1):
            if "\n" not in comment.text and self.lines and self.lines[-1].strip():
                self.lines[-1] += " " + comment.text.rstrip()
            else:
                self._comment_lines(comment, indent)
            end_line = max(end_line, comment.end_line)
        self.last_line = end_line

    # -- definitions ----------------------------------------------------------------------------

    def _entity(self, entity: ast.Entity) -> None:
        has_inner_comments = any(c.pos.line < entity.end_line for c in self.comments)
        if not entity.members and not has_inner_comments:
            self.lines.append(f"entity {entity.name} {{}}")
            self._trailing(entity.end_line, "")
            return
        self.lines.append(f"entity {entity.name} {{")
        self._trailing(entity.pos.line, INDENT)
        for index, member in enumerate(entity.members):
            self._leading(member.pos.line, INDENT, blank_before=True)
            if index and not self.lines[-1].endswith("{"):
                self._blank_if_gap(member.pos.line)
            self.lines.append(INDENT + _member(member))
            self._trailing(member.end_line, INDENT)
        self._leading(entity.end_line, INDENT, blank_before=True)
        self.lines.append("}")
        self._trailing(entity.end_line, "")

    def _rule(self, rule: ast.Rule) -> None:
        params = ", ".join(f"{p.name} {p.type}" for p in rule.params)
        self.lines.append(f"rule {rule.name}({params}) {{")
        if keeps_verbatim(rule.body):
            self.lines[-1] += rule.body + "}"
        else:
            body = normalise_rule_body(rule.body)
            self.lines.extend(INDENT + line if line else "" for line in body.split("\n"))
            self.lines.append("}")
        self._trailing(rule.end_line, "")


def _member(member: ast.Member) -> str:
    if isinstance(member, ast.Relation):
        types = " ".join(str(t) for t in member.subject_types)
        return f"relation {member.name} {types}".rstrip()
    if isinstance(member, ast.Attribute):
        return f"attribute {member.name} {member.type}"
    return f"{member.keyword} {member.name} = {format_expr(member.expr)}"
