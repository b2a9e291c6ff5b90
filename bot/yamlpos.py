"""YAML parsed into plain Python values that remember the line each came from.

PyYAML's node tree keeps marks; we walk it with the SafeLoader's own scalar constructor, so types
(int, bool, date) are resolved exactly as `yaml.safe_load` would, and never touch PyYAML's globals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Problem:
    """One validation problem, printed as `file:line: message`."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PosMap(dict):  # type: ignore[type-arg]
    """A mapping with the line of the mapping itself and of each key."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class PosList(list):  # type: ignore[type-arg]
    """A sequence with its own line and the line of each item."""

    line: int
    item_lines: list[int]


def load(text: str, file: str) -> tuple[Any, list[Problem]]:
    """Parse `text`; on a syntax error return (None, [problem]). Lines are 1-based."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return None, [Problem(file, line, f"YAML syntax: {exc.problem or exc}")]
    if node is None:
        return None, []
    problems: list[Problem] = []
    constructor = yaml.SafeLoader("")
    return _convert(node, constructor, file, problems), problems


def _convert(node: yaml.Node, constructor: yaml.SafeLoader, file: str, problems: list[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        result = PosMap()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, constructor, file, problems)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool):
                problems.append(Problem(file, key_line, "a key must be a plain word"))
                continue
            key = str(key)
            if key in result:
                problems.append(Problem(file, key_line, f"duplicate key '{key}'"))
            result[key] = _convert(value_node, constructor, file, problems)
            result.key_lines[key] = key_line
        return result
    if isinstance(node, yaml.SequenceNode):
        items = PosList(_convert(item, constructor, file, problems) for item in node.value)
        items.line = node.start_mark.line + 1
        items.item_lines = [item.start_mark.line + 1 for item in node.value]
        return items
    return constructor.construct_object(node, deep=True)
