"""Full names and home addresses: Russian morphology (pymorphy3 knows first names, surnames and
patronymics) and the shape of Russian addresses, with the words around them.

A full name is surname + first name + patronymic in any order, surname + initials, first name +
patronymic, or first name + surname; a single first name ("Анна") is not hidden. A home address is
a street with a house or a flat, from the city or the postal code to the flat number, unless the
words before it say it is an office (МФЦ, отделение, налоговая …).
"""

from __future__ import annotations

import re
from functools import lru_cache

from bot.normalize import morph


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD = re.compile(r"[А-ЯЁа-яё]+(?:-[А-ЯЁа-яё]+)?")
_INITIAL = re.compile(r"[А-ЯЁ]\.\s?(?:[А-ЯЁ]\.?)?")
_PATRONYMIC = re.compile(
    r"(?:ович|евич|ьич)(?:а|у|ем|е)?$|(?:овн|евн|ичн)(?:а|ы|е|у|ой|ою)$|оглы$|кызы$", re.IGNORECASE
)
_SURNAME_SHAPE = re.compile(
    r"(?:ов|ев|ёв|ин|ын|ский|цкий|ская|цкая|ова|ева|ёва|ина|ына|енко|ко|ук|юк|чук|ян|дзе|швили|ых|их|ман|ер)"
    r"(?:а|у|ым|ой|е|ом|ых|ой|им|ого|ому)?$",
    re.IGNORECASE,
)
_NAME_LABEL = re.compile(
    r"(?:\bфио\b|ф\.и\.о\.?|фамили\w*|меня\s+зовут|зовут|имя\s+и\s+фамили\w*|я\s*[-—–]|на\s+имя|получател\w*|"
    r"владел\w*|мать|отец|сын|дочь|ребен\w*|ребён\w*|муж|жена|бабушк\w*|дедушк\w*|подпись|от\s+имени|"
    r"заявител\w*|гражданин\w*|гр\.|пользовател\w*)\s*[:\-—–]?\s*$",
    re.IGNORECASE,
)
# Capitalised words that start sentences or name places, things and services, never people.
_NOT_NAMES = words(
    """здравствуйте добрый доброго спасибо пожалуйста помогите подскажите скажите почему когда где как
    что кто госуслуги госуслуг мфц снилс инн паспорт полис омс россия москва мир max макс сбер сбербанк
    тинькофф втб альфа яндекс гугл google telegram телеграм вконтакте вк ватсап whatsapp вайбер есиа
    пенсионный налоговая гибдд мвд фнс пфр сфр фсс роспотребнадзор росреестр мои документы привет алло
    уважаемые уважаемый коллеги добрый день вечер утро"""
)


@lru_cache(maxsize=50_000)
def _kind(word: str) -> str:
    """'P' patronymic, 'N' first name, 'S' surname, '' anything else (for this word alone)."""
    low = word.lower().replace("ё", "е")
    if low in _NOT_NAMES or len(low) < 2:
        return ""
    parses = morph().parse(low)
    tags = [(p.tag, p.score) for p in parses]
    if any("Patr" in t for t, _ in tags) or (_PATRONYMIC.search(low) and len(low) > 6):
        return "P"
    name = sum(s for t, s in tags if "Name" in t)
    surname = sum(s for t, s in tags if "Surn" in t)
    if name >= 0.4 and name >= surname:
        return "N"
    if surname >= 0.3:
        return "S"
    if name >= 0.25:
        return "N"
    if (
        word[:1].isupper()
        and _SURNAME_SHAPE.search(low)
        and not any(p.tag.POS in ("ADJF", "VERB", "INFN", "PRTF", "ADVB", "GRND") and p.score > 0.5 for p in parses)
    ):
        return "s"  # shaped like a surname, unknown to the dictionary
    return ""


def is_plain_noun(word: str) -> bool:
    """A word that could be a password ("солнышко") rather than a word of the sentence ("неверный")."""
    parses = morph().parse(word.lower())
    return bool(parses) and parses[0].tag.POS == "NOUN"


# Only these messages can hold a full name: two capitalised words in a row, a patronymic, initials, a label.
_MAY_NAME = re.compile(
    r"[А-ЯЁ][а-яё]+[\s,]+[А-ЯЁ]|(?i:ович|евич|ьич|овн|евн|ичн|оглы|кызы)\w{0,3}\b|(?<![а-яё])[а-яё]\.\s?[а-яё]\.|"
    r"(?<![А-ЯЁа-яё])[А-ЯЁ]\.|(?i:фио|фамили|зовут|на\s+имя)|[А-ЯЁ]{2,}\s+[А-ЯЁ]{2,}"
)


def names(text: str) -> list[tuple[int, int]]:
    """Spans of full names in `text`."""
    if not _MAY_NAME.search(text):
        return []
    tokens: list[tuple[int, int, str, str]] = []  # start, end, kind, surface
    position = 0
    for m in re.finditer(r"[А-ЯЁа-яё]\.\s?(?:[А-ЯЁа-яё]\.?)?(?![а-яё])|[А-ЯЁа-яё]+(?:-[А-ЯЁа-яё]+)?|\S", text):
        surface = m.group()
        if re.fullmatch(r"[А-ЯЁ]\.\s?(?:[А-ЯЁ]\.?)?|[а-яё]\.\s?[а-яё]\.", surface):
            kind = "I"
        elif _WORD.fullmatch(surface):
            kind = _kind(surface)
        else:
            kind = "," if surface == "," else "x"
        tokens.append((m.start(), m.end(), kind, surface))
        position = m.end()
    del position
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        j = i
        run: list[tuple[int, int, str, str]] = []
        while j < len(tokens) and tokens[j][2] in ("P", "N", "S", "s", "I"):
            run.append(tokens[j])
            j += 1
        if len(run) >= 2 or (run and _labelled(text, run[0][0])):
            span = _full_name(text, run)
            if span:
                found.append(span)
        i = max(j, i + 1)
    return found


def _full_name(text: str, run: list[tuple[int, int, str, str]]) -> tuple[int, int] | None:
    kinds = "".join(t[2] for t in run)
    capitalised = all(t[3][:1].isupper() for t in run if t[2] != "I")
    labelled = _labelled(text, run[0][0])
    strong = "P" in kinds or "I" in kinds
    if "I" in kinds and not re.search(r"[SsN]", kinds):
        return None  # initials alone
    if len(run) == 1:
        # after "ФИО:", "фамилия", "меня зовут": one surname is enough.
        return (run[0][0], run[0][1]) if kinds in ("S", "s") or (labelled and kinds != "I") else None
    if not strong:
        # first name + surname: only when written as names (capitals) or introduced as one
        named = "N" in kinds and re.search(r"[Ss]", kinds)
        if not ((capitalised or labelled) and named) and not (labelled and len(run) >= 2):
            return None
    elif "P" in kinds and not capitalised and not labelled and not re.search(r"[NSs]", kinds):
        return None
    if "P" in kinds and "N" not in kinds and not re.search(r"[Ss]", kinds):
        return None
    return run[0][0], run[-1][1]


def _labelled(text: str, start: int) -> bool:
    return bool(_NAME_LABEL.search(text[max(0, start - 30) : start]))


def follows_a_name(text: str, start: int) -> bool:
    """A date right after a full name ("Иванов Иван Иванович, 12.03.1985") is a date of birth."""
    before = text[max(0, start - 60) : start]
    spans = names(before)
    return bool(spans) and not before[spans[-1][1] :].strip(" ,;:-—–(").strip()


# -- addresses -----------------------------------------------------------------------------------

_STREET = (
    r"(?:ул\.?|улиц[аеыу]|пр-т\.?|пр-кт\.?|просп\.?|проспект\w*|пер\.?|переул\w*|б-р|бульвар\w*|ш\.|шоссе|"
    r"наб\.?|набережн\w*|пл\.|площад\w*|мкр\.?|мкрн\.?|микрорайон\w*|проезд\w*|туп\.?|тупик\w*|аллея|аллеи|"
    r"тракт\w*|квартал\w*|снт|днт)"
)
_PLACE = (
    r"(?:г\.|г(?=\s)|гор\.|город\w*|пос\.|п\.|пгт\.?|пос[её]л\w*|с\.|село|дер\.|деревн\w*|ст-ца|ст\.|станиц\w*|"
    r"обл\.?|област\w*|кра[йя]|р-н|район\w*|респ\.?|республик\w*)"
)
_HOUSE = (
    r"(?:(?:д\.?|дом)\s*№?\s*)?\d+(?:\s?[а-яА-Я](?![а-яА-Я]))?(?![\d.:])(?:\s*[/-]\s*\d+(?:[а-яА-Я](?![а-яА-Я]))?)?"
)
_TAIL = (
    r"(?:\s*,?\s*(?:(?:корп\.?|корпус|к\.?|стр\.?|строение|лит\.?|литер\w*)\s*\d+\w?|"
    r"(?:кв\.?|квартир\w*|комн\.?|комнат\w*)\s*№?\s*\d+\w?))*"
)
_STREET_AT = re.compile(rf"(?<![\w-]){_STREET}(?![\w-])", re.IGNORECASE)
_FLAT_AT = re.compile(r"(?<![\w-])(?:кв\.?|квартир\w*)\s*№?\s*\d+", re.IGNORECASE)
_AFTER_PREFIX_STREET = re.compile(rf"\s*(?:[\w-]+\.?)(?:\s+[\w-]+){{0,2}}?\s*,?\s*{_HOUSE}{_TAIL}", re.IGNORECASE)
_AFTER_POSTFIX_STREET = re.compile(rf"\s*,?\s*{_HOUSE}{_TAIL}", re.IGNORECASE)
_NAME_BEFORE = re.compile(r"(?:\d+-?[а-яё]{0,2}\s+)?[\w-]+\s*$")
_LEFT = re.compile(
    rf"(?:(?:\d{{6}}|{_PLACE}\s*[А-ЯЁ][\w-]+(?:\s+[А-ЯЁ][\w-]+)?|[А-ЯЁ][\w-]+(?:\s+[\w-]+)?\s+{_PLACE}|[А-ЯЁ][а-яё-]+)"
    rf"\s*,\s*|{_PLACE}\s*[А-ЯЁ][\w-]+\s+)+$",
    re.IGNORECASE,
)
_HOUSE_BEFORE_FLAT = re.compile(
    rf"[А-ЯЁа-яё][\w-]+\s*,?\s*{_HOUSE}(?:\s*,?\s*(?:корп\.?|корпус|к\.?|стр\.?|строение)\s*\d+\w?)?\s*,?\s*$",
    re.IGNORECASE,
)
# A city written after the flat ("… кв 56 екатеринбург", "…, г Калуга") or a city's short name before.
_CITY_AFTER = re.compile(rf"\s*,?\s*(?:{_PLACE}\s*)?([А-ЯЁа-яё][\w-]+)", re.IGNORECASE)
_CITY_BEFORE = re.compile(r"([А-ЯЁа-яё][\w-]+)\s*,?\s*$")
_CITY_SHORT = words("спб мск питер москва нск екб екат нн")
_LABEL = re.compile(
    r"(?:по\s+адресу|адрес\w*(?:\s+[а-яё]+){0,2}\s*:|адрес\w*(?:\s+(?:регистрации|проживания|прописки|места\s+жительства))?|прописк\w*|"
    r"(?:живу|проживаю|прописан\w*|зарегистрирован\w*)(?:\s+(?:в|на|по)(?![\w.]))?)\s*[:\-—–]?\s*",
    re.IGNORECASE,
)
_LABELLED_TOKEN = re.compile(
    rf"\s*(?:,\s*)?(?:\d{{6}}|{_PLACE}|{_STREET}|(?:д\.?|дом|кв\.?|квартир\w*|корп\.?|корпус|к\.|стр\.?)(?![а-яё])|"
    rf"\d+[а-яА-Я]?(?:\s*[/-]\s*\d+[а-яА-Я]?)?|[А-ЯЁ][\w-]*|\d+-?(?:я|й|го|ая|ый|ий))\.?",
)
_HOME = re.compile(
    r"жив[уёе]\w*|прожива\w*|пропис\w*|зарегистрирован\w*|регистраци\w*|мой\s+адрес|адрес\w*\s*:|"
    r"по\s+адресу|домашн\w*|мест\w*\s+жительств\w*|ко\s+мне|мне\s+домой|у\s+меня|мой\s+дом|наш\w*\s+дом|"
    r"переехал\w*|доставк\w*|отправьте|пришлите|приезжа\w*|квартир\w*|\bкв\b",
    re.IGNORECASE,
)
_OFFICE = re.compile(
    r"(?:мфц|офис\w*|отделени\w*|центр\w*|налогов\w*|инспекци\w*|гибдд|мвд|паспортн\w*|почт\w*|банк\w*|суд\w*|"
    r"администраци\w*|поликлиник\w*|больниц\w*|пфр|сфр|фнс|ведомств\w*|мои\s+документы|окн\w*|филиал\w*|"
    r"пункт\w*|учреждени\w*|организаци\w*|находится|расположен\w*)[^.!?\n]{0,40}$",
    re.IGNORECASE,
)
_MARKED = re.compile(
    rf"(?<![\w-])(?:{_STREET}|{_PLACE}|д\.|дом|кв\.?|квартир\w*|корп\.?|[А-ЯЁ][а-яё]{{2,}})(?![\w-])", re.IGNORECASE
)
_HAS_FLAT = re.compile(r"(?<![\w])(?:кв\.?|квартир\w*)\s*№?\s*\d", re.IGNORECASE)


@lru_cache(maxsize=20_000)
def _is_city(word: str) -> bool:
    low = word.lower()
    if low in _CITY_SHORT:
        return True
    return any("Geox" in p.tag and p.score >= 0.3 for p in morph().parse(low))


def addresses(text: str) -> list[tuple[int, int]]:
    """Spans of home addresses in `text`."""
    found: list[tuple[int, int]] = []
    home = bool(_HOME.search(text))

    def add(start: int, end: int) -> None:
        chunk = text[start:end]
        while chunk and chunk[-1] in " ,.;:":
            chunk, end = chunk[:-1], end - 1
        lead = len(chunk) - len(chunk.lstrip(" ,"))
        start += lead
        if not re.search(r"\d", text[start:end]):
            return
        office = _OFFICE.search(text[max(0, start - 60) : start])
        if office and not _HAS_FLAT.search(text[start:end]):
            return
        after = _CITY_AFTER.match(text, end)
        if after and (_is_city(after.group(1)) or re.match(rf"\s*,?\s*{_PLACE}", after.group(), re.IGNORECASE)):
            end = after.end()
        before = _CITY_BEFORE.search(text, max(0, start - 30), start)
        if before and _is_city(before.group(1)):
            start = before.start()
        # two readings of one address (after "живу", and around the street) become one span
        for other in [f for f in found if f[0] < end and start < f[1]]:
            found.remove(other)
            start, end = min(start, other[0]), max(end, other[1])
        found.append((start, end))

    for m in _LABEL.finditer(text):
        position, end = m.end(), m.end()
        while True:
            token = _LABELLED_TOKEN.match(text, position)
            if token is None or token.end() == position:
                break
            position = token.end()
            if re.search(r"\d", token.group()):
                end = position
        if end > m.end() and _MARKED.search(text[m.end() : end]):
            add(m.end(), end)
    for m in _STREET_AT.finditer(text):
        right = _AFTER_POSTFIX_STREET.match(text, m.end())
        if right is not None:  # "Ленинский проспект 32-15": the street's name is before the marker
            name = _NAME_BEFORE.search(text, max(0, m.start() - 30), m.start())
            start = name.start() if name else m.start()
        else:
            right = _AFTER_PREFIX_STREET.match(text, m.end())
            start = m.start()
        if right is None:
            continue
        left = _LEFT.search(text, max(0, start - 80), start)
        if left is not None:
            start = left.start()
        if home or _HAS_FLAT.search(text[start : right.end()]):
            add(start, right.end())
    for m in _FLAT_AT.finditer(text):
        house = _HOUSE_BEFORE_FLAT.search(text, max(0, m.start() - 50), m.start())
        if house is None:
            continue
        left = _LEFT.search(text, max(0, house.start() - 80), house.start())
        add(left.start() if left else house.start(), m.end())
    return sorted(found)
