"""Finding phone numbers in free text and putting them in one canonical form.

Citizens write numbers every way: +7 (800) 100-70-10, 8-800-100-70-10, 88001007010, 8 800 555-0-555.
Canonical form: digits only, a leading 8 or 7 becomes 7 (11 digits), short numbers stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence

# 10 national digits after an optional +7 / 7 / 8 prefix, separated by spaces, dashes, dots or
# brackets. The look-arounds stop it from eating into longer digit runs (card or document numbers).
_FULL = re.compile(
    r"(?<![\d+])(?:\+\s?7|7|8)?[\s\-.(]*\d{3}[\s\-.)]*\d{1,3}[\s\-.]*\d{1,2}[\s\-.]*\d{1,3}(?:[\s\-.]*\d{1,3})?(?!\d)"
)
_SHORT = re.compile(r"(?<![\d+\-.,:/])\d{3,4}(?![\d\-.,:/]\d)")
# Words that make a lone 3-4 digit number read as a phone number rather than a date or a count.
_PHONE_CONTEXT = re.compile(
    r"номер|звон|позвон|набрал|набира|телефон|смс|sms|сообщен|пишут|написал|прислал|пришл|с\s+номера|"
    r"это\s+госуслуг|официальн|горяч|линия|поддержк",
    re.IGNORECASE,
)


def canonical(raw: str) -> str:
    """Digits of a number in canonical form ('' if it is not a plausible phone number)."""
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 11 and digits[0] in "78":
        return "7" + digits[1:]
    if len(digits) == 10:
        return "7" + digits
    if 3 <= len(digits) <= 4:
        return digits
    return ""


def find_full_numbers(text: str) -> list[str]:
    """Canonical 11-digit numbers written in `text` (in order, without repeats)."""
    found: list[str] = []
    for match in _FULL.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if len(digits) not in (10, 11):
            continue
        if len(digits) == 11 and digits[0] not in "78":
            continue
        # Ten bare digits are an application or document number more often than a phone, unless
        # they look like a mobile number; "№ 3829104756" never is one.
        before = text[: match.start()].rstrip()
        if before.endswith(("№", "#", "N")) or (len(digits) == 10 and match.group().isdigit() and digits[0] != "9"):
            continue
        number = canonical(match.group())
        if number and number not in found:
            found.append(number)
    return found


def find_numbers(text: str) -> list[str]:
    """Full numbers, plus lone 3-4 digit numbers when the text speaks of calls or messages."""
    numbers = find_full_numbers(text)
    if _PHONE_CONTEXT.search(text):
        remainder = _FULL.sub(" ", text)
        for match in _SHORT.finditer(remainder):
            value = match.group()
            if value not in numbers and not _looks_like_year(value):
                numbers.append(value)
    return numbers


def _looks_like_year(value: str) -> bool:
    return len(value) == 4 and value[:2] in ("19", "20")


_VERIFY_CONTEXT = re.compile(
    r"\bзвон|\bпозвон|\bнабира|правда|официальн|настоящ|мошен|развод|это\s+госуслуг|с\s+него|с\s+этого|"
    r"пришл|прислал|пишут|написал|просил|безопасн",
    re.IGNORECASE,
)


def written_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` writes something that is surely a phone number: +7/8 and ten digits, or a
    ten-digit mobile number (9xx). Redaction leaves these alone: citizens ask about them."""
    spans = []
    for match in _FULL.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if (len(digits) == 11 and digits[0] in "78") or (len(digits) == 10 and digits[0] == "9"):
            spans.append((match.start(), match.end()))
    return spans


def asks_about_number(text: str, numbers: Sequence[str], official: Container[str]) -> bool:
    """Whether a message with numbers asks "is this number official?" rather than how to reach support.

    Any unknown number is worth a warning; a message naming only official numbers ("на 115 не
    дозвониться") is about contacting support unless it speaks of calls, messages or trust.
    """
    if any(n not in official for n in numbers):
        return True
    return bool(_VERIFY_CONTEXT.search(text))


def looks_like_phone(text: str) -> bool:
    """True if `text` contains something written like a full phone number (for the validator)."""
    return bool(find_full_numbers(text))


def pretty(number: str) -> str:
    """A canonical number written the way Russians read it: 8 800 100-70-10."""
    if len(number) == 11:
        lead = "8" if number[1] in "89" else "+7"
        return f"{lead} {number[1:4]} {number[4:7]}-{number[7:9]}-{number[9:]}"
    return number
