"""Numbers in free text: chains of digit groups, and the checksums of Russian documents and cards.

Citizens write the same number many ways ("4508 123456", "45 08, 123456", "112.233.445 95",
"4276 1234 5678 9012 3 раза"). A *chain* is a run of digit groups joined by short separators;
a detector asks a chain for a run of whole groups with the right number of digits, so a count
written after a card number ("… 9012 3 раза") is not swallowed into it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GROUP = re.compile(r"(?<![^\W\d_])\d+")  # not glued to a word before it: "CVV2", "iOS17" are names
# What may join two digit groups of one number: a space, a dash, a dot, a comma, "№", "номер".
_JOIN = re.compile(r"\s{0,2}[-–.,/]?\s{0,2}(?:(?:№|N|#|номер|ном\.|н\.)\s*)?", re.IGNORECASE)


@dataclass(frozen=True)
class Chain:
    """Digit groups that read as one number; `groups` are (start, end) in the text."""

    groups: tuple[tuple[int, int], ...]
    text: str

    @property
    def start(self) -> int:
        return self.groups[0][0]

    @property
    def end(self) -> int:
        return self.groups[-1][1]

    @property
    def size(self) -> int:
        return sum(e - s for s, e in self.groups)

    def digits(self, first: int = 0, last: int | None = None) -> str:
        return "".join(self.text[s:e] for s, e in self.groups[first:last])

    def take(self, lengths: tuple[int, ...], low: int = 0, high: int = 0) -> tuple[int, int, str] | None:
        """Whole groups from the first: the longest run whose digit count is one of `lengths`; failing
        that, the longest run of `low`..`high` digits (a labelled number written oddly). (start, end, digits)."""
        total, exact, loose = 0, None, None
        for i, (_, e) in enumerate(self.groups):
            total += e - self.groups[i][0]
            if total in lengths:
                exact = (self.start, e, self.digits(0, i + 1))
            if low <= total <= high:
                loose = (self.start, e, self.digits(0, i + 1))
            if total > max(*lengths, high):
                break
        return exact or loose


def chains(text: str) -> list[Chain]:
    """Every chain of digit groups in `text`, left to right. Callers mask what is already decided
    (dates, times, claimed spans) with a non-digit character first, so a date never joins the
    number next to it."""
    found: list[Chain] = []
    current: list[tuple[int, int]] = []
    for m in _GROUP.finditer(text):
        if current and not _JOIN.fullmatch(text[current[-1][1] : m.start()]):
            found.append(Chain(tuple(current), text))
            current = []
        current.append((m.start(), m.end()))
    if current:
        found.append(Chain(tuple(current), text))
    return found


def snils_valid(digits: str) -> bool:
    if len(digits) != 11 or not digits.isdigit():
        return False
    body, check = digits[:9], int(digits[9:])
    if len(set(body)) == 1:
        return False
    total = sum(int(d) * (9 - i) for i, d in enumerate(body))
    if total < 100:
        expected = total
    elif total in (100, 101):
        expected = 0
    else:
        expected = total % 101
        if expected == 100:
            expected = 0
    return check == expected


def inn_valid(digits: str) -> bool:
    def control(ds: str, weights: tuple[int, ...]) -> int:
        return sum(int(d) * w for d, w in zip(ds, weights, strict=False)) % 11 % 10

    if not digits.isdigit() or len(set(digits)) == 1:
        return False
    if len(digits) == 10:
        return control(digits, (2, 4, 10, 3, 5, 9, 4, 6, 8)) == int(digits[9])
    if len(digits) == 12:
        return control(digits, (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)) == int(digits[10]) and control(
            digits, (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
        ) == int(digits[11])
    return False


def luhn_valid(digits: str) -> bool:
    if not 13 <= len(digits) <= 19 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0
