"""Finding personal data in citizens' text and redacting it before anything is stored or shown.

Redacted: confirmation codes (digits near код/code/смс), passwords ("пароль: …"), passport series
and number, SNILS and INN (only when the checksum holds), bank card numbers (only when Luhn holds).
What must survive: dates, application numbers, phone numbers the citizen asks about, sums, times.
Checksums and context words keep near-misses out, because a support ticket that lost the
application number is as useless as one that leaked a code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot import phones

CODE = "code"
PASSWORD = "password"
PASSPORT = "passport"
SNILS = "snils"
INN = "inn"
CARD = "card"

MARKS = {
    CODE: "[код скрыт]",
    PASSWORD: "[пароль скрыт]",
    PASSPORT: "[паспорт скрыт]",
    SNILS: "[СНИЛС скрыт]",
    INN: "[ИНН скрыт]",
    CARD: "[номер карты скрыт]",
}
# The citizen is warned about these: they are what fraudsters ask for.
SECRETS = frozenset({CODE, PASSWORD})

_CODE_WORD = r"(?:код\w*|code|смс|sms|смска|цифр\w*|пин|pin)"
_CODE = re.compile(
    rf"(?i)(?P<pre>{_CODE_WORD}[^\d\n]{{0,25}}?)(?P<val>\b\d(?:[\s-]?\d){{3,7}}\b)"
    rf"|(?P<val2>\b\d{{4,8}}\b)(?=\s*[-–—]?\s*(?:это\s+)?(?:мой\s+)?{_CODE_WORD})"
)
_PASSWORD = re.compile(
    r"(?i)(?:парол\w*|password|пасс)\s*(?:[:=\-–—]|это|такой|был|стоит|:\s*)\s*(?P<val>[^\s,;]+)"
    r"|(?i:парол\w*|password)\s+(?P<val2>(?=[^\s,;]*\d)(?=[^\s,;]*[a-zA-Zа-яА-Я])[^\s,;]{6,})"
)
_PASSPORT_KEY = re.compile(r"(?i)паспорт|серия|серии|серию")
_PASSPORT = re.compile(r"(?<!\d)(\d{2})[\s-]?(\d{2})[\s№-]{0,3}(?:номер\s*)?(\d{6})(?!\d)")
_SNILS_FORMAT = re.compile(r"(?<!\d)(\d{3})[-\s](\d{3})[-\s](\d{3})[-\s]{1,2}(\d{2})(?!\d)")
_DIGITS = re.compile(r"(?<![\d.,:/])\d(?:[\s-]?\d){9,18}(?![\d.,:/]\d)")
_INN_KEY = re.compile(r"(?i)\bинн\b|\binn\b")
_SNILS_KEY = re.compile(r"(?i)снилс|snils")


@dataclass(frozen=True)
class Redacted:
    text: str  # with marks, for storage and staff
    for_matching: str  # sensitive spans removed, for the matcher
    found: frozenset[str]

    @property
    def has_secret(self) -> bool:
        return bool(self.found & SECRETS)


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


def redact(text: str) -> Redacted:
    """Find and mark personal data; pure and fast (runs on every message)."""
    spans: list[tuple[int, int, str]] = []

    def add(start: int, end: int, kind: str) -> None:
        if not any(s < end and start < e for s, e, _ in spans):
            spans.append((start, end, kind))

    protected = phones.written_spans(text)

    for m in _PASSWORD.finditer(text):
        group = "val" if m.group("val") else "val2"
        add(m.start(group), m.end(group), PASSWORD)
    for m in _SNILS_FORMAT.finditer(text):
        digits = "".join(m.groups())
        if snils_valid(digits):
            add(m.start(), m.end(), SNILS)
    has_passport_word = bool(_PASSPORT_KEY.search(text))
    for m in _PASSPORT.finditer(text):
        # "45 08 123456" is written like a passport; ten bare digits are one only with the word nearby.
        spaced = m.group(0) != "".join(m.groups())
        if has_passport_word or (spaced and not _inside(m.start(), m.end(), protected)):
            add(m.start(), m.end(), PASSPORT)
    for m in _DIGITS.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if luhn_valid(digits) and len(digits) >= 15:
            add(m.start(), m.end(), CARD)
        elif len(digits) == 11 and snils_valid(digits) and (_SNILS_KEY.search(text) or digits[0] not in "78"):
            add(m.start(), m.end(), SNILS)
        elif (
            len(digits) == 12 and inn_valid(digits) or len(digits) == 10 and inn_valid(digits) and _INN_KEY.search(text)
        ):
            add(m.start(), m.end(), INN)
    for m in _CODE.finditer(text):
        group = "val" if m.group("val") else "val2"
        start, end = m.start(group), m.end(group)
        if not _inside(start, end, protected):
            add(start, end, CODE)

    if not spans:
        return Redacted(text, text, frozenset())
    spans.sort()
    marked, plain, last = [], [], 0
    for start, end, kind in spans:
        marked.append(text[last:start])
        marked.append(MARKS[kind])
        plain.append(text[last:start])
        plain.append(" ")
        last = end
    marked.append(text[last:])
    plain.append(text[last:])
    return Redacted("".join(marked), "".join(plain), frozenset(kind for _, _, kind in spans))


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= start and end <= e for s, e in spans)
