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
    text_lines: dict[str, int]  # for a literal block (`key: |`): the line its text starts on

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def line_in(self, key: str, offset: int, text: str) -> int:
        """The line of character `offset` of the value `text` of `key` (exact for `|` blocks)."""
        start = getattr(self, "text_lines", {}).get(key)
        if start is None:
            return self.line_of(key)
        return start + text.count("\n", 0, offset)


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
        message = f"YAML syntax: {exc.problem or exc}"
        if exc.context == "while scanning a simple key" and exc.context_mark is not None:
            # A line that lost its indentation reads as the start of a new "key:", and the scanner only
            # gives up where that key should have had its colon, lines later: point at where it began.
            mark = exc.context_mark
            message = (
                "YAML syntax: this line is not indented like the text it belongs to "
                "(every line of a text block is indented at least as deep as its first line)"
            )
        line = mark.line + 1 if mark else 1
        return None, [Problem(file, line, message)]
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
        result.text_lines = {}
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
            if isinstance(value_node, yaml.ScalarNode) and value_node.style == "|":
                result.text_lines[key] = value_node.start_mark.line + 2
        return result
    if isinstance(node, yaml.SequenceNode):
        items = PosList(_convert(item, constructor, file, problems) for item in node.value)
        items.line = node.start_mark.line + 1
        items.item_lines = [item.start_mark.line + 1 for item in node.value]
        return items
    return constructor.construct_object(node, deep=True)
