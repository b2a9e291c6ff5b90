"""Fraud signals in a citizen's message: a code or password already given away, and whose number it is.

A phone number in a message is not always a question about that number: "мой номер +7 916 …, на него
не приходит смс" is about a code that does not come. And a citizen who says they told a caller a
code needs the "act now" steps whatever number the caller showed: the real hotline never asks for
codes, so an official number on the screen means it was spoofed.
"""

from __future__ import annotations

import re

# The citizen's own past act, singular ("назвала", "продиктовал"): "сказали, что код придёт" is not one.
_GIVE = r"(?:назвал|сказал|продиктовал|сообщил|отправил|переслал|скинул|дал|отдал|зачитал)а?\b"
_SECRET = r"(?:код\w*|парол\w*|цифр\w*|смс\w*|sms)"
_GAVE_SECRET = re.compile(
    rf"(?i)(?<!не )\b{_GIVE}\s+(?:\w+\s+){{0,3}}?{_SECRET}|\b{_SECRET}[\s,]+(?:\w+[\s,]+){{0,3}}?(?<!не ){_GIVE}"
)
_ASKED = re.compile(
    rf"(?i)(?:просил\w*|попросил\w*|требовал\w*)\s+(?:\w+\s+){{0,2}}?"
    rf"(?:назвать|продиктовать|сказать|сообщить|прислать|переслать|ввести)\s+(?:\w+\s+){{0,2}}?{_SECRET}"
)
_I_GAVE = re.compile(rf"(?i)\b(?:я|мы|и)\s+(?:\w+\s+){{0,2}}?(?<!не ){_GIVE}")
_OWN = r"(?:мо[йеёяю]\w*|сво[йеёяю]\w*|мне\s+на|на\s+мой)\s+(?:\w+\s+){0,2}?(?:номер\w*|телефон\w*|мобильн\w*|сотов\w*)"
_NUMBER = r"[+\d(][\d\s\-().]{5,}\d"
_OWN_NUMBER = re.compile(rf"(?i){_OWN}[^\d+]{{0,20}}{_NUMBER}|{_NUMBER}[^\d]{{0,12}}?(?:-|—|–|это)\s*{_OWN}")


def gave_secret(text: str) -> bool:
    """The citizen says they already gave a code or password to someone ("продиктовала им код")."""
    if _GAVE_SECRET.search(text):
        return True
    return bool(_ASKED.search(text) and _I_GAVE.search(text))


def without_own_numbers(text: str) -> str:
    """`text` without the citizen's own phone numbers ("мой номер +7 916 …"): those are never checked."""
    return _OWN_NUMBER.sub(" ", text)
