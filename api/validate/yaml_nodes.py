"""YAML nodes turned into typed values, for the validation-file loader.

``Loader`` resolves scalars the way Permify's YAML library (yaml.v3) does; ``Reader`` reads its
nodes into strings, integers, booleans, mappings and lists, and collects a positioned problem
for every node that does not fit instead of stopping at the first. What the nodes mean (the keys
of a validation file) is ``loader``'s business.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import yaml

from api.validate.shape import Pos
from engine.errors import EngineError
from engine.suggest import suggest

T = TypeVar("T")

_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class Loader(yaml.SafeLoader):
    """Scalars resolved as Permify's yaml.v3 does: only true/false are booleans (not yes/no/on/off)
    and dates stay strings."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
#: yaml.v3 still reads these YAML 1.1 words into a typed bool field (a check's assertions).
_YAML11_BOOLS = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF"), False),
}
_NULL_TAG = "tag:yaml.org,2002:null"


class Reader:
    """Turns YAML nodes into typed values, collecting a problem (with its position) for every
    item that does not fit instead of stopping at the first."""

    def __init__(self, file: str, loader: Loader) -> None:
        self.file = file
        self.loader = loader
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def warn(self, node: yaml.Node, where: str, message: str) -> None:
        pos = self.pos(node)
        self.warnings.append(f"{self.file}:{pos.line}:{pos.column}: warning: {where}: {message}")

    def problem(self, node: yaml.Node, where: str, message: str) -> None:
        pos = self.pos(node)
        self.problems.append(f"{self.file}:{pos.line}:{pos.column}: {where}: {message}")

    @staticmethod
    def pos(node: yaml.Node) -> Pos:
        return Pos(node.start_mark.line + 1, node.start_mark.column + 1)

    @staticmethod
    def is_null(node: yaml.Node | None) -> bool:
        return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG)

    def plain(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def mapping(
        self, node: yaml.Node | None, where: str, keys: Sequence[str] | None = None
    ) -> dict[str, yaml.Node] | None:
        """The entries of a mapping (null reads as empty); None after reporting anything else.

        With ``keys``, any other key is a problem at that key, with the closest known key
        suggested: a misspelt key would otherwise be skipped and its part of the file never run.
        """
        if node is None or self.is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, where, f"expected a mapping, got {_shown(self.plain(node))}")
            return None
        entries: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.plain(key_node)
            if not isinstance(key, str):
                self.problem(key_node, where, f"expected string keys, got {key!r}")
            elif key in entries:
                self.problem(key_node, where, f"key `{key}` appears twice")
            else:
                if keys is not None and key not in keys:
                    self.problem(key_node, where, _unknown_key(key, keys))
                entries[key] = value_node
        return entries

    def sequence(self, node: yaml.Node | None, where: str) -> list[yaml.Node]:
        """The items of a list (null reads as empty)."""
        if node is None or self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, where, f"expected a list, got {_shown(self.plain(node))}")
            return []
        return list(node.value)

    def string(self, node: yaml.Node, where: str) -> str | None:
        """A scalar's text. Like yaml.v3 reading into a string field, a number or boolean keeps
        its source text: an id written ``01`` is ``"01"``."""
        if isinstance(node, yaml.ScalarNode) and not self.is_null(node):
            return str(node.value)
        self.problem(node, where, f"expected a string, got {_shown(self.plain(node))}")
        return None

    def required(
        self,
        entries: Mapping[str, yaml.Node],
        key: str,
        where: str,
        parent: yaml.Node,
        parse: Callable[[str], T],
    ) -> T | None:
        """``entries[key]`` as a string, parsed; reports a missing key or a parse error."""
        node = entries.get(key)
        if node is None or self.is_null(node):
            self.problem(parent, where, f"`{key}` is required")
            return None
        return self.parsed(node, f"{where}.{key}", parse)

    def optional(self, entries: Mapping[str, yaml.Node], key: str, where: str) -> str:
        """``entries[key]`` as a string; "" when absent or null."""
        node = entries.get(key)
        if node is None or self.is_null(node):
            return ""
        return self.string(node, f"{where}.{key}") or ""

    def parsed(self, node: yaml.Node, where: str, parse: Callable[[str], T]) -> T | None:
        text = self.string(node, where)
        if text is None:
            return None
        try:
            return parse(text)
        except EngineError as exc:
            self.problem(node, where, str(exc))
            return None

    def integer(self, node: yaml.Node | None, where: str) -> int | None:
        if node is None or self.is_null(node):
            return None
        value = self.plain(node)
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(node, where, f"expected an integer, got {_shown(value)}")
            return None
        return value

    def boolean(self, node: yaml.Node, where: str) -> bool | None:
        value = self.plain(node)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in _YAML11_BOOLS:
            return _YAML11_BOOLS[value]
        self.problem(node, where, f"expected true or false, got {_shown(value)}")
        return None

    def strings(self, node: yaml.Node | None, where: str) -> tuple[str, ...]:
        items = self.sequence(node, where)
        found = (self.string(item, f"{where}[{i}]") for i, item in enumerate(items))
        return tuple(item for item in found if item is not None)

    def parsed_list(
        self, node: yaml.Node | None, where: str, parse: Callable[[str], T]
    ) -> list[tuple[T, Pos]]:
        items = self.sequence(node, where)
        found = (
            (self.parsed(item, f"{where}[{i}]", parse), self.pos(item))
            for i, item in enumerate(items)
        )
        return [(value, pos) for value, pos in found if value is not None]


def _unknown_key(key: str, keys: Sequence[str]) -> str:
    close = suggest(key, keys, n=1)
    if close:
        return f"unknown key `{key}` (did you mean `{close[0]}`?)"
    return f"unknown key `{key}`; expected {_one_of(keys)}"


def _one_of(keys: Sequence[str]) -> str:
    quoted = [f"`{k}`" for k in keys]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _shown(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
