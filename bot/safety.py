"""Finding personal data in citizens' (and staff's) text and redacting it before anything is stored,
logged or shown to staff.

Hidden: confirmation codes, passwords, passport, SNILS, INN, OMS policy, driver's licence, birth
certificate, bank card, CVV, card expiry, bank account, full names, dates of birth, home
addresses, the citizen's own phone numbers and e-mail addresses (rules in `bot/pii/`).
Kept, because a ticket without them is useless: the official numbers, a caller's number the
citizen asks about, application numbers, dates and times, sums, counts, error codes, app
versions, payees' INN and BIK, postal codes of offices, and the words "СНИЛС" or "паспорт".
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.pii import ner
from bot.pii.numbers import inn_valid, luhn_valid, snils_valid
from bot.pii.rules import (
    ADDRESS,
    BANK_ACCOUNT,
    BIRTH_CERTIFICATE,
    BIRTH_DATE,
    CARD,
    CARD_EXPIRY,
    CATEGORIES,
    CODE,
    CVV,
    DRIVER_LICENCE,
    INN,
    NAME,
    OMS,
    OWN_EMAIL,
    OWN_PHONE,
    PASSPORT,
    PASSWORD,
    SNILS,
    Span,
    find,
)

MARKS = {
    CODE: "[код скрыт]",
    PASSWORD: "[пароль скрыт]",
    PASSPORT: "[паспорт скрыт]",
    SNILS: "[СНИЛС скрыт]",
    INN: "[ИНН скрыт]",
    OMS: "[полис ОМС скрыт]",
    DRIVER_LICENCE: "[номер прав скрыт]",
    BIRTH_CERTIFICATE: "[свидетельство скрыто]",
    CARD: "[номер карты скрыт]",
    CVV: "[CVV скрыт]",
    CARD_EXPIRY: "[срок карты скрыт]",
    BANK_ACCOUNT: "[счёт скрыт]",
    NAME: "[ФИО скрыто]",
    BIRTH_DATE: "[дата рождения скрыта]",
    ADDRESS: "[адрес скрыт]",
    OWN_PHONE: "[телефон скрыт]",
    OWN_EMAIL: "[e-mail скрыт]",
}
# What the citizen is told about (sensitive_warning_*): secrets fraudsters ask for, documents, the rest.
SECRETS = frozenset({CODE, PASSWORD, CVV})
DOCUMENTS = frozenset({PASSPORT, SNILS, INN, OMS, DRIVER_LICENCE, BIRTH_CERTIFICATE, CARD, CARD_EXPIRY, BANK_ACCOUNT})

# What the citizen is told was hidden (accusative: "Я скрыл …").
WHAT = {
    CODE: "код",
    PASSWORD: "пароль",
    CVV: "код карты",
    PASSPORT: "номер паспорта",
    SNILS: "СНИЛС",
    INN: "ИНН",
    OMS: "номер полиса ОМС",
    DRIVER_LICENCE: "номер водительского удостоверения",
    BIRTH_CERTIFICATE: "номер свидетельства о рождении",
    CARD: "номер карты",
    CARD_EXPIRY: "срок действия карты",
    BANK_ACCOUNT: "номер счёта",
    NAME: "ФИО",
    BIRTH_DATE: "дату рождения",
    ADDRESS: "адрес",
    OWN_PHONE: "номер телефона",
    OWN_EMAIL: "адрес почты",
}


def hidden_what(found: frozenset[str]) -> str:
    """ "номер паспорта, СНИЛС и адрес" for the categories found, in a fixed order."""
    names = [WHAT[c] for c in CATEGORIES if c in found]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " и " + names[-1]


__all__ = [
    "WHAT",
    "hidden_what",
    "CATEGORIES",
    "DOCUMENTS",
    "MARKS",
    "SECRETS",
    "Redacted",
    "Span",
    "find_spans",
    "inn_valid",
    "luhn_valid",
    "redact",
    "snils_valid",
]


@dataclass(frozen=True)
class Redacted:
    text: str  # with marks, for storage and staff
    for_matching: str  # sensitive spans removed, for the matcher
    found: frozenset[str]

    @property
    def has_secret(self) -> bool:
        return bool(self.found & SECRETS)

    @property
    def has_document(self) -> bool:
        return bool(self.found & DOCUMENTS)


def find_spans(text: str) -> list[Span]:
    """Where `text` holds personal data, sorted, not overlapping."""
    spans, _ = find(text)
    extra = ner.person_spans(text)
    if extra:
        taken = [(s.start, s.end) for s in spans]
        spans += [Span(s, e, NAME) for s, e in extra if not any(a < e and s < b for a, b in taken)]
        spans.sort(key=lambda s: s.start)
    return spans


def redact(text: str) -> Redacted:
    """Find and mark personal data; pure and fast (runs on every message)."""
    spans = find_spans(text)
    if not spans:
        return Redacted(text, text, frozenset())
    marked, plain, last = [], [], 0
    for span in spans:
        marked.append(text[last : span.start])
        marked.append(MARKS[span.category])
        plain.append(text[last : span.start])
        plain.append(" ")
        last = span.end
    marked.append(text[last:])
    plain.append(text[last:])
    return Redacted("".join(marked), "".join(plain), frozenset(s.category for s in spans))
