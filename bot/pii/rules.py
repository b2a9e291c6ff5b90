"""The rules that find personal data in a citizen's message, and what they leave alone.

One pass over the text, in an order that matters: what is most certain decides first and is
masked, so later, looser rules never see it.

1. e-mails, passwords, dates (a date of birth or an ordinary date), birth-certificate and
   driver's-licence formats with letters, home addresses and full names;
2. numbers next to their label ("СНИЛС …", "паспорт серия … номер …", "заявление № …"): the label
   nearest before a number decides what it is, whatever its checksum;
3. phone numbers: official ones and a caller's number the citizen asks about stay, the citizen's
   own is hidden (the words around it tell which);
4. what staff need is kept: sums, counts, times, versions, error codes, application numbers;
5. unlabelled numbers are hidden only when their format and checksum say what they are (SNILS,
   INN, card, bank account, passport written as "45 08 123456"), and 4–8 digit numbers are hidden
   as codes when the message speaks of codes or of typing them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot import phones
from bot.pii import people
from bot.pii.numbers import Chain, chains, inn_valid, luhn_valid, snils_valid

CODE = "code"
PASSWORD = "password"
PASSPORT = "passport"
SNILS = "snils"
INN = "inn"
OMS = "oms"
DRIVER_LICENCE = "driver_licence"
BIRTH_CERTIFICATE = "birth_certificate"
CARD = "card"
CVV = "cvv"
CARD_EXPIRY = "card_expiry"
BANK_ACCOUNT = "bank_account"
NAME = "name"
BIRTH_DATE = "birth_date"
ADDRESS = "address"
OWN_PHONE = "own_phone"
OWN_EMAIL = "own_email"

CATEGORIES = (
    CODE, PASSWORD, PASSPORT, SNILS, INN, OMS, DRIVER_LICENCE, BIRTH_CERTIFICATE, CARD, CVV,
    CARD_EXPIRY, BANK_ACCOUNT, NAME, BIRTH_DATE, ADDRESS, OWN_PHONE, OWN_EMAIL,
)  # fmt: skip

# Official contacts (shared/facts/contacts.md): never hidden, wherever they appear.
OFFICIAL_NUMBERS = frozenset({"78001007010", "115", "0919"})
OFFICIAL_EMAIL_DOMAIN = "gosuslugi.ru"

_MASK = "_"  # replaces decided characters in the working copy: neither a digit nor a space


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    category: str


class _Scan:
    """The text, what has been decided about its parts, and a working copy with those parts masked."""

    def __init__(self, text: str):
        self.text = text
        self.spans: list[Span] = []
        self.kept: list[tuple[int, int, str]] = []
        self._work = list(text)

    @property
    def work(self) -> str:
        return "".join(self._work)

    def free(self, start: int, end: int) -> bool:
        return not any(s.start < end and start < s.end for s in self.spans) and not any(
            s < end and start < e for s, e, _ in self.kept
        )

    def hide(self, start: int, end: int, category: str) -> bool:
        while start < end and self.text[start].isspace():
            start += 1
        while end > start and self.text[end - 1] in " \t\n,.;:!?)»\"'":
            if (
                self.text[end - 1] == "."
                and end - 2 >= start
                and self.text[end - 2].isalpha()
                and (end - 3 < start or not self.text[end - 3].isalpha())
            ):
                break  # the dot of an initial ("Петров П.П.")
            end -= 1
        if start >= end or not self.free(start, end):
            return False
        self.spans.append(Span(start, end, category))
        self._work[start:end] = _MASK * (end - start)
        return True

    def keep(self, start: int, end: int, kind: str) -> None:
        if start < end and self.free(start, end):
            self.kept.append((start, end, kind))
            self._work[start:end] = _MASK * (end - start)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# -- e-mail --------------------------------------------------------------------------------------

_EMAIL = _rx(
    r"(?<![\w.+-])[\w.+-]+(?:@|\s?\((?:at|собака)\)\s?|\s(?:собака|at)\s)[\w-]+(?:(?:\.|\s(?:точка|dot)\s)[\w-]+)*"
    r"(?:\.|\s(?:точка|dot)\s)(?:ru|com|net|org|рф|su|info|biz|ua|by|kz|me|io|online|ру|ком)\b"
    r"|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
)
# An address the citizen received something from is not theirs: letters "from support" are a fraud sign.
_EMAIL_FROM = _rx(
    r"(?:(?:письм\w*|пишут|написал\w*|пришл\w*|прислал\w*|рассылк\w*|сообщени\w*|уведомлени\w*)[^.!?\n]{0,20}?"
    r"\b(?:с|от|со)(?:\s+(?:адреса|почты|ящика))?|отправител\w*|мошенник\w*\s+с)\s*[:«\"]?\s*$"
)


def _emails(scan: _Scan) -> None:
    for m in _EMAIL.finditer(scan.text):
        value = m.group()
        if value.lower().endswith(OFFICIAL_EMAIL_DOMAIN) or _EMAIL_FROM.search(
            scan.text[max(0, m.start() - 40) : m.start()]
        ):
            scan.keep(m.start(), m.end(), "email")
        else:
            scan.hide(m.start(), m.end(), OWN_EMAIL)


# -- passwords -----------------------------------------------------------------------------------

_PW_LABEL = r"(?<![\w])(?:п[ао]р[оа]л[ьяюие]\w*|парол\b|password\b|passwd\b|pass\b|pwd\b|пасс?ворд\w*|пасс\b|пассв\w*)"
_PW_SEPARATOR = re.compile(
    r"\s*(?::|=|—|–|-(?=\s)|\bтакой\b|\bтакое\b|\bэто\b|\bбыл\b|\bбыла\b|\bстоит\b|\bна\b|\bсейчас\b|\bвот\b)\s*[:—–-]?\s*",
    re.IGNORECASE,
)
_PW_AFTER_LABEL = re.compile(rf"(?i){_PW_LABEL}")
_QUOTED = re.compile(r"[«\"'“„]([^«»\"'“”„\n]{1,64})[»\"'”“]")
_TOKEN = re.compile(r"[^\s,;]+")
_LATIN_WORDS = people.words("gosuslugi госуслуги password login email mail sms code esia gosuslugi.ru ok wifi max")
# Words that follow "пароль" in ordinary sentences: "пароль был верный", "пароль не подходит".
_NOT_A_PASSWORD = people.words(
    """не нет неверный неправильный неверно неправильно верный правильный верно правильно старый новый
    простой сложный слабый надежный надёжный короткий длинный другой тот тоже же уже от для к и или а но
    был была было стал стала который какой такой один этот вроде вообще все всё меня мне я мой моя мою
    свой свою подходит подошел подошёл забыл забыла сбросил сбросила сменил сменила поменял поменяла
    восстановил восстановила помню знаю ввожу ввела ввёл вводил вводила пишет пишут сбросить сменить
    поменять восстановить ввести придумать придумал придумала госуслуг госуслуги госуслугах сайте сайт
    портале портал почты почта приложении приложение входа вход учетки учётки аккаунта личный кабинет
    восемь символов цифр букв знаков из смс sms смс при по на в с у"""
)


def _password_like(token: str, after_colon: bool) -> bool:
    core = token.strip(".,!?;:()«»\"'")
    if len(core) < 4 or core.lower() in _NOT_A_PASSWORD or core.lower() in _LATIN_WORDS:
        return False
    if phones.canonical(core) and core.isdigit() and len(core) >= 10:
        return False  # a phone number: the phone rules decide
    has_digit = any(c.isdigit() for c in core)
    has_alpha = any(c.isalpha() for c in core)
    has_latin = any("a" <= c.lower() <= "z" for c in core)
    special = any(c in "!@#$%^&*_+=~?/\\|<>[]{}" for c in core)
    if (has_digit and has_alpha) or special or (has_latin and len(core) >= 5):
        return True
    if has_digit and not has_alpha:
        return after_colon and len(core) >= 4
    if after_colon and has_alpha:
        # "пароль: солнышко" is a password; "пароль: не подходит" was stopped above.
        return people.is_plain_noun(core)
    return False


_TYPED = re.compile(
    r"(?:ввож\w*|ввел\w*|ввёл|ввела|вводил\w*|набира\w*|набрал\w*|пишу|вписыва\w*|вписал\w*|указыва\w*)\s+",
    re.IGNORECASE,
)
_GAP_STOPS = re.compile(r"\b(?:не|нет|ни)\b", re.IGNORECASE)


def _strong_password(token: str) -> bool:
    """A word no sentence uses: letters and digits mixed ("1q2w3e4r", "Nikita.07", "Dacha2015!")."""
    core = token.strip(".,!?;:()«»\"'")
    if len(core) < 6 or "@" in core or re.fullmatch(r"[\d.,:/-]+|v?\d+(?:\.\d+)+", core, re.IGNORECASE):
        return False
    return any(c.isdigit() for c in core) and any(c.isalpha() for c in core)


def _hide_token(scan: _Scan, start: int, token: str) -> None:
    # "!" and "?" may be part of a password; a final "." or "," ends the sentence
    value = token.rstrip(",;:)»\"'")
    if value.endswith(".") and not value.endswith(".."):
        value = value[:-1]
    scan.hide(start, start + len(value.rstrip(",;:)»\"'")), PASSWORD)


def _password_after(scan: _Scan, tail_start: int) -> bool:
    text = scan.text
    tail = text[tail_start : tail_start + 80]
    line_end = re.search(r"[\n]|[.!?](?:\s|$)", tail)
    tail = tail[: line_end.start()] if line_end else tail
    quoted = _QUOTED.search(tail)
    # a quoted word is the password ("пароль «Lipa2020»"); a quoted phrase is a message ("«неверный пароль»")
    if quoted and quoted.start() <= 40 and " " not in quoted.group(1).strip() and len(quoted.group(1)) >= 4:
        scan.hide(tail_start + quoted.start(1), tail_start + quoted.end(1), PASSWORD)
        return True
    # "пароль от госуслуг: X", "пароль такой: X", "пароль — X": the value follows a separator, and
    # the words before the separator only say which password ("Восстановить пароль не удаётся: …" is no value).
    for sep in _PW_SEPARATOR.finditer(tail):
        if sep.start() > 40 or _GAP_STOPS.search(tail[: sep.start()]):
            break
        token = _TOKEN.match(tail, sep.end())
        if token and _password_like(token.group(), after_colon=any(ch in sep.group() for ch in ":=—–-")):
            _hide_token(scan, tail_start + token.start(), token.group())
            return True
    # "мой пароль Zx81kqpL": the first password-like word within a few words of the label; the word
    # after "от"/"для"/"к" says what the password is for ("пароль от Wi-Fi роутера").
    tokens = list(_TOKEN.finditer(tail))[:4]
    for i, token in enumerate(tokens):
        if i and tokens[i - 1].group().lower() in ("от", "для", "к", "на", "в") and not _strong_password(token.group()):
            continue
        if _password_like(token.group(), after_colon=False):
            _hide_token(scan, tail_start + token.start(), token.group())
            return True
    return False


def _passwords(scan: _Scan) -> None:
    text = scan.text
    talk = False
    for m in _PW_AFTER_LABEL.finditer(text):
        talk = True
        if not _password_after(scan, m.end()):
            # "qwe123QWE вот мой пароль": the value before the label
            head_start = max(0, m.start() - 40)
            for token in reversed(list(_TOKEN.finditer(text, head_start, m.start()))[-3:]):
                if _strong_password(token.group()):
                    _hide_token(scan, token.start(), token.group())
                    break
    for m in _TYPED.finditer(text):
        talk = True
        for token in list(_TOKEN.finditer(text, m.end(), min(len(text), m.end() + 40)))[:4]:
            if _strong_password(token.group()):
                _hide_token(scan, token.start(), token.group())
    if talk:
        # a message about passwords: a second one ("старый был X, а новый Y") is one too
        for token in _TOKEN.finditer(text):
            if _strong_password(token.group()) and scan.free(token.start(), token.end()):
                _hide_token(scan, token.start(), token.group())


# -- dates ---------------------------------------------------------------------------------------

_MONTHS = r"(?:январ|феврал|март|апрел|ма[йя]|июн|июл|август|сентябр|октябр|ноябр|декабр)\w*"
_DATE = _rx(
    rf"(?<![\d.])(?:\d{{1,2}}[./-]\d{{1,2}}[./-](?:19|20)?\d{{2}}|\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}\s+{_MONTHS}(?:\s+(?:19|20)\d{{2}})?)"
    r"(?:\s*(?:г\.?\s?р\.?|года?\b|г\.))?(?![\d])"
)
_YEAR_OF_BIRTH = _rx(r"(?<!\d)(?:19|20)\d{2}(?=\s*(?:г\.?\s?р\.?|года?\s+рожд|г\.?\s+рожд))")
_BIRTH_BEFORE = _rx(
    r"(?:дат\w*\s+(?:моего\s+|его\s+|её\s+|ее\s+)?рожд\w*|д\.\s?р\.?|\bд/р|\bдр\b|родил\w*|рожден\w*|рождени\w*|\bг\.?\s?р\.?|born|\bbirth\w*|dob)"
    r"[^\d\n]{0,20}$"
)
_BIRTH_TALK = _rx(r"рожд\w*|родил\w*|\bд\.\s?р\.|\bд/р\b|\bдр\b|\bг\.\s?р\.")
_BIRTH_AFTER = _rx(r"^\s*(?:рожд|г\.?\s?р\.?|года\s+рожд|г\.?\s+рожд|\(?\s*дата\s+рожд|\(?д\.р\.)")
_ISSUE_BEFORE = _rx(
    r"(?:выда\w*|выдачи|\bот|\bс|получ\w*|подал\w*|подан\w*|оплат\w*|\bдо|\bпо|срок\w*|действ\w*)\b[^\d\n]{0,12}$"
)
_TIME = _rx(r"(?<![\d:.])(?:[01]?\d|2[0-3])[:.][0-5]\d(?![\d:]|\.\d)")
_YEAR_NOW = 2026


def _dates(scan: _Scan) -> None:
    text = scan.text
    birth_talk = bool(_BIRTH_TALK.search(text))
    for m in _DATE.finditer(text):
        before = text[max(0, m.start() - 40) : m.start()]
        after = text[m.end() : m.end() + 25]
        year = re.findall(r"(?:19|20)\d{2}", m.group())
        born = bool(_BIRTH_BEFORE.search(before) or _BIRTH_AFTER.match(after) or re.search(r"г\.?\s?р", m.group()))
        if not born and year and int(year[-1]) <= _YEAR_NOW - 14 and not _ISSUE_BEFORE.search(before):
            # "Иванов Иван Иванович, 12.03.1985"; "дата рождения стоит 02.08.1987, а надо 08.02.1987"
            born = birth_talk or people.follows_a_name(text, m.start())
        if born:
            value = re.sub(r"\s*(?:г\.?\s?р\.?|года?|г\.)$", "", m.group(), flags=re.IGNORECASE)
            scan.hide(m.start(), m.start() + len(value), BIRTH_DATE)
        else:
            scan.keep(m.start(), m.end(), "date")
    for m in _YEAR_OF_BIRTH.finditer(text):
        scan.hide(m.start(), m.end(), BIRTH_DATE)
    if birth_talk:  # "родилась 5 мая 1990, а в профиле стоит 1991"
        for m in _YEAR.finditer(scan.work):
            if int(m.group()) <= _YEAR_NOW - 14 and not _ISSUE_BEFORE.search(text[max(0, m.start() - 25) : m.start()]):
                scan.hide(m.start(), m.end(), BIRTH_DATE)
    for m in _TIME.finditer(text):
        scan.keep(m.start(), m.end(), "time")


# -- documents written with letters --------------------------------------------------------------

_BIRTH_CERT = _rx(
    r"(?<![\w-])(?:[IVXLivxl]{1,5}|[1-9]|[ІIУVХX]{1,5})\s?[-–]?\s?[А-ЯЁ]{2}\s*(?:№|N|номер)?\s*\d{6}(?!\d)"
)
_DRIVER_FORMAT = _rx(r"(?<![\w])\d{2}\s?[А-ЯЁA-Z]{2}\s?№?\s?\d{6}(?!\d)")
_DRIVER_LABEL = _rx(r"(?:водител\w*|\bв/у\b|\bву\b|\bправ[аеоу]?\b|удостоверени\w*)[^\n]{0,40}$")
_CERT_LABEL = _rx(r"(?:свидетельств\w*|св-в\w*|свид\.?)\s+о\s+рожд\w*|свидетельств\w*|\bсвид\w*")


def _lettered_documents(scan: _Scan) -> None:
    text = scan.text
    for m in _BIRTH_CERT.finditer(text):
        letters = re.search(r"[А-ЯЁ]{2}", m.group(), re.IGNORECASE)
        if letters and letters.group().isupper():
            scan.hide(m.start(), m.end(), BIRTH_CERTIFICATE)
    for m in _DRIVER_FORMAT.finditer(text):
        if re.search(r"[A-ZА-ЯЁ]{2}", m.group()) and _DRIVER_LABEL.search(text[max(0, m.start() - 60) : m.start()]):
            scan.hide(m.start(), m.end(), DRIVER_LICENCE)


# -- labelled numbers ----------------------------------------------------------------------------

# Each label says what the number right after it is. The nearest label before a number wins, so
# "заявление № 1234567890" stays even in a message about a passport.
_LABELS: tuple[tuple[str, str], ...] = (
    (
        PASSPORT,
        r"сери[яиюей]\s+и\s+номер\w*|номер\w*\s+и\s+сери\w*|паспорт\w*|пасп\.|\bсери[яиюей]\b|\bс/н\b|загран\w*",
    ),
    (SNILS, r"снилс\w*|snils|страхов\w+\s+(?:номер|свидетельств\w*)|\bснлс\b|\bсниллс\b"),
    (INN, r"\bинн\w*|\binn\b|идентификационн\w+\s+номер\w*\s+налогоплательщик\w*"),
    (OMS, r"\bомс\b|\bполис\w*|\bенп\b|медицинск\w+\s+полис\w*|страховой\s+полис\w*"),
    (DRIVER_LICENCE, r"водительск\w*(?:\s+удостоверени\w*)?|\bв/у\b|\bву\b|\bправ[аеу]?\b|удостоверени\w*"),
    (BIRTH_CERTIFICATE, r"свидетельств\w*\s+о\s+рожд\w*|св-в\w*\s+о\s+рожд\w*|свид\w*\s+о\s+рожд\w*"),
    (CARD, r"\bкарт[аыуеой]\w*|\bcard\b|visa|виза|master\s?card|мастеркард|\bмир\b|maestro|номер\s+карты|карточк\w*"),
    (
        CVV,
        r"\b(?:cvv2?|cvc2?|свв|свс|цвв|цвц|цвс)(?:[\s-]*код\w*)?\b|(?:трехзначн\w*|трёхзначн\w*|три|3)\s+(?:код\w*|цифр\w*)|"
        r"(?:код\w*|цифр\w*)\s+(?:на\s+|с\s+)?(?:сзади|обороте|оборотной|обратной|задней)(?:\s+сторон\w*)?(?:\s+карт\w*)?",
    ),
    (
        BANK_ACCOUNT,
        r"\bр/с\b|\bр/сч\b|\bл/с\b|расч[её]тн\w*\s+сч[её]т\w*|лицев\w*\s+сч[её]т\w*|сч[её]т\w*|\bсч\.|account",
    ),
    (
        CODE,
        r"\bкод\w*|\bcode\b|\bсмс\w*|\bsms\b|\bсмск\w*|\bэсэмэс\w*|\bцифр\w*|\bпин\w*|\bpin\b|подтвержд\w*|провероч\w*|одноразов\w*|\botp\b",
    ),
    ("bik", r"\bбик\b|\bbik\b"),
    ("correspondent", r"\bк/с\b|\bкорр?\.?\s*сч[её]т\w*|корреспондентск\w*"),
    (
        "application",
        r"заявлени\w*|заявк\w*|обращени\w*|запрос\w*|заказ\w*|уведомлени\w*|квитанци\w*|\bуин\b|\bid\b|\bид\b|"
        r"номер\s+дела|\bдел[оа]\b|трек\w*|идентификатор\w*|начислени\w*|платеж\w*|платёж\w*|№|\bN\b|#",
    ),
    ("error", r"ошибк\w*|error|\berr\b|сбо[йя]\w*|код\s+ошибки"),
    ("version", r"верси\w*|\bv\.?|\bver\.?|сборк\w*|обновлени\w*"),
    ("sum", r"госпошлин\w*|пошлин\w*|оплатил\w*|заплатил\w*|сумм[аеуы]\w*|стоимост\w*|штраф\w*"),
    ("postal", r"индекс\w*|отделени\w*\s+(?:почты|связи)|отделени\w*|почтов\w+\s+отделени\w*"),
    ("phone", r"телефон\w*|\bтел\.?|мобильн\w*|mobile|phone"),
    ("department", r"код\w*\s+подразделени\w*|подразделени\w*"),
)
# Tried only where a word starts: one alternation of all labels is slow if tried at every character.
_LABEL = re.compile(
    r"(?<![\w/])(?:" + "|".join(f"(?P<l{i}>{p})" for i, (_, p) in enumerate(_LABELS)) + ")", re.IGNORECASE
)
# Which label a passport's "серия … номер …" belongs to is the document's: the words in between do not end it.
_GAP = re.compile(r"[^\d\n!?]{0,32}")
_OWN = _rx(r"(?:\bмо[йяеёию]\w*|\bсво[йяеёию]\w*|\bу\s+меня\b|\bmy\b|плательщик\w*|физическ\w+\s+лиц\w*)")
_PAYEE = _rx(
    r"получател\w*|реквизит\w*|квитанци\w*|\bкпп\b|\bбик\b|\bуфк\b|казначейств\w*|организаци\w*|\bооо\b|\bпао\b|"
    r"\bзао\b|\bоао\b|\bфнс\b|инспекци\w*|налогов\w+\s+орган\w*|учреждени\w*|администраци\w*|\bмфц\b|\bгибдд\b|"
    r"\bбанк\w*|госпошлин\w*|штраф\w*|платеж\w*|платёж\w*|оплат\w*|чек\w*"
)
_WANT = {
    PASSPORT: ((10, 9), 4, 10),
    SNILS: ((11,), 8, 11),
    INN: ((12, 10), 8, 12),
    OMS: ((16,), 6, 16),
    DRIVER_LICENCE: ((10,), 6, 10),
    BIRTH_CERTIFICATE: ((6,), 6, 6),
    CARD: ((16, 18, 19, 15, 13), 12, 19),
    CVV: ((3, 4), 3, 4),
    BANK_ACCOUNT: ((20,), 15, 25),
    CODE: ((4, 5, 6, 7, 8, 3), 3, 8),
}


def _nearest_labels(work: str) -> list[tuple[int, int, str]]:
    found = []
    for m in _LABEL.finditer(work):
        name = next(k for k, v in m.groupdict().items() if v is not None)
        found.append((m.start(), m.end(), _LABELS[int(name[1:])][0]))
    return found


# After a number, a label may name it: "4611298473 это номер паспорта", "вот 058-713-226 94 это снилс".
_AFTER_GAP = re.compile(r"\s*[-—–,:]?\s*(?:(?:это|мой|моя|моего|мое|моё|мои|вот|номер|мне|у\s+меня|и\s+есть)\s+){0,3}")


def _label_for(chain: Chain, labels: list[tuple[int, int, str]], work: str) -> tuple[int, int, str] | None:
    best = None
    for label in labels:
        if label[1] <= chain.start and _GAP.fullmatch(work[label[1] : chain.start]):
            best = label  # the last one that fits is the nearest
    if best is None:
        for label in labels:
            if label[0] >= chain.end and _AFTER_GAP.fullmatch(work[chain.end : label[0]]):
                return label if label[2] in _DOCUMENTS else None
    return best


def _labelled(scan: _Scan, kinds: Iterable[str]) -> dict[tuple[int, ...], str]:
    """Numbers right after (or just before) a label of one of `kinds` (documents first, codes later).
    Returns the shapes (digits per group) of the document numbers hidden, for `_same_shape`."""
    shapes: dict[tuple[int, ...], str] = {}
    wanted = set(kinds)
    work = scan.work
    numbers = chains(work)
    if not numbers:
        return shapes  # nothing a label could name (most messages): the labels need not be looked for
    labels = _nearest_labels(work)
    for chain in numbers:
        label = _label_for(chain, labels, work)
        if label is None or label[2] not in wanted:
            continue
        start_label, end_label, kind = label
        if kind in _KEEP_LABELS:
            scan.keep(chain.start, chain.end, kind)
            continue
        if kind == "phone":
            continue  # the phone rules decide
        lengths, low, high = _WANT[kind]
        taken = chain.take(lengths, low, high)
        if taken is None:
            continue
        start, end, digits = taken
        if kind == PASSPORT and len(digits) < 6 and not re.match(r"(?i)сери", scan.text[start_label:end_label]):
            continue  # "госпошлина за паспорт 6000": four digits are a series only after "серия"
        if kind == INN and _payee_label(scan.text, start_label, end_label, start):
            scan.keep(start, end, "payee_inn")
        elif kind == BANK_ACCOUNT and _organisation_account(digits):
            # a person's account is theirs whoever pays into it; an organisation's is a payee's
            scan.keep(start, end, "payee_account")
        elif kind == CODE:
            if _followed_by_unit(scan.text, end) or re.match(r"\s*(?:год|г\.)", scan.text[end:]):
                continue
            if len(digits) <= 4 and _CARD_TALK.search(scan.text) and len(digits) in (3, 4) and start - end_label < 20:
                scan.hide(start, end, CVV)
            elif len(digits) >= 4:
                scan.hide(start, end, kind)
        else:
            for part_start, part_end in _parts(scan.text, start, end):
                scan.hide(part_start, part_end, kind)
            shapes[tuple(len(g) for g in re.findall(r"\d+", scan.text[start:end]))] = kind
    return shapes


_PASSPORT_TALK = _rx(r"паспорт\w*|\bсери[яиюей]\b")


def _same_shape(scan: _Scan, shapes: dict[tuple[int, ...], str]) -> None:
    """A second number written like a labelled one is the same document: "СНИЛС 051-336-912 48,
    правильный — 051-336-921 48"; and in a message about a passport, "3619 204517" is one."""
    if _PASSPORT_TALK.search(scan.text):
        shapes = {(4, 6): PASSPORT, (2, 2, 6): PASSPORT, **shapes}
    if not shapes:
        return
    for chain in chains(scan.work):
        kind = shapes.get(tuple(e - s for s, e in chain.groups))
        if kind is not None and (chain.size >= 9 or kind == PASSPORT):
            scan.hide(chain.start, chain.end, kind)


def _parts(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A number split where a word joins its parts ("4508 номер 123456"): the word is not data."""
    parts, last = [], start
    for m in re.finditer(r"\s*(?:номер|ном\.|н\.)\s*", text[start:end], re.IGNORECASE):
        parts.append((last, start + m.start()))
        last = start + m.end()
    parts.append((last, end))
    return parts


def _payee_label(text: str, label_start: int, label_end: int, value: int) -> bool:
    """ "ИНН получателя …", "в квитанции ИНН …": the payee words belong to this label's clause."""
    before = re.split(r"[.;!?\n]", text[max(0, label_start - 30) : label_start])[-1]
    if _OWN.search(before[-15:]) or _OWN.search(text[label_end:value]) or re.search(r"физическ", text[label_end:value]):
        return False
    return bool(_PAYEE.search(before) or _PAYEE.search(text[label_end:value]))


def _organisation_account(digits: str) -> bool:
    # Accounts of organisations, the treasury and banks' correspondent accounts; a person's starts 408/423/426.
    return len(digits) == 20 and not digits.startswith(("40817", "40820", "423", "426", "40802", "40803"))


# -- phone numbers -------------------------------------------------------------------------------

# Words that say a number is someone else's: the caller's, the sender's (nearest word before wins).
_CALLER = _rx(
    r"(?<!по)звонил[аи]?\b|звоню|набираю|звонят|звонит\b|позвонил[аи]?\b|звонок|звонк\w*|звонивш\w*|набирал[аи]?\b|набрал[аи]?\b|"
    r"входящ\w*|с\s+номер\w*|с\s+телефон\w*|с\s+этого|с\s+него|от\s+номер\w*|пишут|написал\w*|прислал\w*|"
    r"присыла\w*|пришл\w*\s+с|смс\s+с|sms\s+с|сообщени\w*\s+с|мошенн\w*|развод\w*|официальн\w*|настоящ\w*|"
    r"правда|что\s+за\s+номер|чей|неизвестн\w*|представил\w*|безопасност\w*|это\s+госуслуг\w*|госуслуги\s+ли|"
    r"проверьте|не\s+брать|сообщил\w*|представля\w*|третьему\s+лицу|третьим\s+лицам|посторонн\w*|злоумышленник\w*|"
    r"незнаком\w*"
)
# Words that say it is the citizen's own.
_OWN_PHONE = _rx(
    r"\bмо[йяеёию]\w*|\bсво[йяеёию]\w*|\bмне\s+на\b|на\s+мой|привяз\w*|контактн\w*|для\s+связи|перезвон\w*|"
    r"свяж\w*|связат\w*|(?:по)?звоните|наберите|мобильн\w*|\bтел\b\.?|(?<!по\s)телефон\w*|сменил\w*|сменен\w*|сменён\w*|"
    r"поменял\w*|нов\w+\s+номер\w*|стар\w+\s+номер\w*|\b(?:стар|нов)(?:ый|ая|ого|ом|ому)\s*[:\-—–]?\s*$|зарегистрирован\w*\s+на|на\s+номер\w*|на\s+телефон\w*|"
    r"доступ\w*\s+к\s+номер\w*|принадлежит\s+мне|меня|указа\w*|вписа\w*|ввожу|логин\w*|whatsapp|"
    r"вотсап|вайбер|viber"
)
_TO = _rx(r"\bна\s*$")
_FROM_NUMBER = _rx(r"с\s+(?:номер|телефон)")
_FIRST_PERSON = _rx(r"\bя\b[^.!?\n]{0,12}$")
_PHONE_WORD = _rx(r"телефон|тел\.|номер")


def _official_numbers(scan: _Scan) -> None:
    """The official numbers in full (hotline, SMS senders) are kept whatever label stands before them."""
    for m in phones._FULL.finditer(scan.work):
        start = m.start() + len(m.group()) - len(m.group().lstrip(" -.(\t"))
        if phones.canonical(m.group()) in OFFICIAL_NUMBERS:
            scan.keep(start, m.end(), "official_number")


def _phones(scan: _Scan) -> None:
    text, work = scan.text, scan.work
    for m in phones._FULL.finditer(work):
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        surely = (len(digits) == 11 and digits[0] in "78") or (len(digits) == 10 and digits[0] == "9")
        named = len(digits) == 10 and ("(" in raw or _PHONE_WORD.search(text[max(0, m.start() - 25) : m.start()]))
        if not (surely or named):
            continue
        start = m.start() + len(raw) - len(raw.lstrip(" -.(\t"))
        number = phones.canonical(raw)
        if number in OFFICIAL_NUMBERS:
            scan.keep(start, m.end(), "official_number")
        elif _is_own_phone(text, start, m.end()):
            scan.hide(start, m.end(), OWN_PHONE)
        else:
            scan.keep(start, m.end(), "caller_number")
    for m in re.finditer(r"(?<![\d+\-])(?:115|0919|900)(?![\d\-])", work):
        scan.keep(m.start(), m.end(), "official_number")


_SENTENCE = re.compile(r"[!?\n]|\.\s+(?=[А-ЯЁA-Z])")


def _is_own_phone(text: str, start: int, end: int) -> bool:
    before = _SENTENCE.split(text[max(0, start - 60) : start])[-1]
    after = _SENTENCE.split(text[end : end + 50])[0]
    own = [m.end() for m in _OWN_PHONE.finditer(before)]
    caller = []
    me_calling = False
    for m in _CALLER.finditer(before):
        # "я звонил на 115 с номера …": the citizen called, from their own number
        first_person = m.group().lower() in ("звоню", "набираю") or _FIRST_PERSON.search(before[: m.start()])
        if first_person or (me_calling and _FROM_NUMBER.match(m.group())):
            me_calling = True
            own.append(m.end())
        else:
            caller.append(m.end())
    to = _TO.search(before)
    if to is not None and to.start() >= max([*own, *caller], default=-1):
        # "смс не приходят на 8 916 …", "звонят мне на …": calls and messages come to the citizen's own
        # number, unless the citizen is the one calling ("я звонил на …")
        return not me_calling
    if own or caller:
        return max(own, default=-1) > max(caller, default=-1)
    own_after = _OWN_PHONE.search(after)
    caller_after = _CALLER.search(after)
    if own_after or caller_after:
        return caller_after is None or (own_after is not None and own_after.start() < caller_after.start())
    # No word near it says whose it is: the number check needs it more than the number needs hiding
    # (a bare number sent to a support bot is a question about that number).
    return False


# -- what staff need ----------------------------------------------------------------------------

_SUM = _rx(r"(?<![\d])\d{1,3}(?:[\s.,]?\d{3})*(?:[.,]\d{1,2})?\s*(?:руб\w*|р\.|р\b|₽|rub\w*|тыс\w*|коп\w*)")
_COUNT = _rx(
    r"(?<![\d.,])(?<!\d-)\d{1,4}\s*(?:-?\s*(?:х|ти|ми|го|й|я|е|ой))?\s*(?:(?:раз|раза|минут[аы]?|мин|час|часа|часов|"
    r"дн[яейи]|дней|день|сут\w*|недел[ьиюя]|месяц\w*|мес|лет|год|года|году|годов|сек\w*|штук\w*|шт|попыт\w*|смс|sms|"
    r"сообщени\w*|цифр\w*|символ\w*|знак\w*|процент\w*|человек\w*|заявлени\w*|документ\w*|страниц\w*|мб|mb|кб|kb|гб|gb|"
    r"км|метр\w*|этаж\w*|окн\w*|класс\w*|кабинет\w*)\b|%)"
)
_VERSION = _rx(
    r"(?<![\d.])\d{1,2}(?:\.\d{1,3}){2,3}(?![\d.]|\s\d{2}\b)|(?:верси\w*|\bv\.?|\bver\.?|android|ios|айос|андроид)\s*\d+(?:\.\d+)+"
)
_ERROR = _rx(
    r"(?:ошибк\w*|error|\berr\b|сбо[йя]\w*|код\s+ошибки)\s*[:№#«\"]?\s*([A-Za-zА-ЯЁ0-9_\-x]*\d[A-Za-zА-ЯЁ0-9_\-x]*)"
)
_BIK = _rx(r"(?:бик|bik)\s*:?\s*(0\d{8})(?!\d)")
_YEAR = _rx(r"(?<![\d.,])(?:19[5-9]\d|20[0-3]\d)(?![\d.,]\d)")


def _keeps(scan: _Scan, errors_only: bool = False) -> None:
    text = scan.text
    for m in _ERROR.finditer(text):
        scan.keep(m.start(1), m.end(1), "error_code")
    if errors_only:
        return
    for m in _VERSION.finditer(text):
        scan.keep(m.start(), m.end(), "app_version")
    for m in _ERROR.finditer(text):
        scan.keep(m.start(1), m.end(1), "error_code")
    for m in _BIK.finditer(text):
        scan.keep(m.start(1), m.end(1), "bik")
    for m in _SUM.finditer(text):
        scan.keep(m.start(), m.end(), "sum")
    for m in _COUNT.finditer(text):
        scan.keep(m.start(), m.end(), "count")


def _looks_like_year(digits: str, chain: Chain) -> bool:
    return len(digits) == 4 and len(chain.groups) == 1 and bool(_YEAR.fullmatch(digits))


def _followed_by_unit(text: str, end: int) -> bool:
    return bool(re.match(r"\s*(?:руб|р\.|₽|раз|минут|мин\b|час|дн|лет|год|сек|штук|шт\b|%)", text[end:], re.IGNORECASE))


# -- unlabelled numbers --------------------------------------------------------------------------

_SNILS_FORMAT = re.compile(r"(?<![\d])\d{3}[-\s.]\d{3}[-\s.]\d{3}[-\s.]{1,2}\d{2}(?!\d)")
_PASSPORT_FORMAT = re.compile(r"(?<![\d])\d{2}\s\d{2}\s{1,2}(?:№\s?)?\d{6}(?!\d)")
_EXPIRY = _rx(r"(?<![\d/.])(0[1-9]|1[0-2])\s?/\s?(\d{2}|20\d{2})(?![\d/])")
_EXPIRY_LABEL = _rx(r"(?:срок\w*|действ\w*|годн\w*|exp\w*|valid|до|по)\s*[:\-]?\s*$")
_CARD_TALK = _rx(r"карт|card|cvv|cvc|visa|мир\b|master|сбер|тинькоф|банк")
_CODE_TALK = _rx(
    r"\bкод\w*|\bcode\b|\bсмс\w*|\bsms\b|\bсмск\w*|\bэсэмэс\w*|\bцифр\w*|\bпин\b|\bpin\b|подтвержд\w*|провероч\w*|"
    r"одноразов\w*|\botp\b|ввож\w*|ввел\w*|ввёл\w*|ввела|вводил\w*|продиктова\w*|диктова\w*|пришл[оа]\s*:|"
    r"вписыва\w*|в\s+окошк\w*|в\s+пол[ея]\b"
)
_NOT_CODE_TALK = _rx(
    r"код\w*\s+(?:ошибк\w*|подразделени\w*|регион\w*|город\w*|стран\w*|бюджетн\w*|услуг\w*|кбк|окато|октмо)|qr[\s-]*код\w*"
)
_NOT_CODE_BEFORE = _rx(
    r"(?:№|#|\bN|номер\w*|\bс|\bот|\bдо|\bв|\bна|\bпо|\bк|индекс\w*|кабинет\w*|офис\w*|дом\w*|кв\.?|д\.)\s*$"
)


def _snils_format(scan: _Scan) -> None:
    for m in _SNILS_FORMAT.finditer(scan.work):
        if snils_valid(re.sub(r"\D", "", m.group())):
            scan.hide(m.start(), m.end(), SNILS)


def _unlabelled(scan: _Scan) -> None:
    text = scan.text
    for m in _PASSPORT_FORMAT.finditer(scan.work):
        scan.hide(m.start(), m.end(), PASSPORT)
    if _CARD_TALK.search(text):
        for m in _EXPIRY.finditer(scan.work):
            if _EXPIRY_LABEL.search(text[max(0, m.start() - 25) : m.start()]) or _CARD_TALK.search(
                text[max(0, m.start() - 40) : m.start()]
            ):
                scan.hide(m.start(), m.end(), CARD_EXPIRY)
    work = scan.work
    code_talk = bool(_CODE_TALK.search(_NOT_CODE_TALK.sub(" ", text)))
    for chain in chains(work):
        digits = chain.digits()
        size = len(digits)
        if 13 <= size <= 19 and luhn_valid(digits):
            scan.hide(chain.start, chain.end, CARD)
            continue
        card = _card_inside(chain)
        if card:
            scan.hide(card[0], card[1], CARD)
            continue
        if size == 20 and digits.startswith(("40817", "40820", "423", "426", "40802")):
            scan.hide(chain.start, chain.end, BANK_ACCOUNT)
        elif size == 11 and snils_valid(digits):
            scan.hide(chain.start, chain.end, SNILS)
        elif size == 12 and inn_valid(digits):
            scan.hide(chain.start, chain.end, INN)
        elif size == 16:
            scan.hide(chain.start, chain.end, OMS)
        elif code_talk and 4 <= size <= 8 and all(e - s <= 6 for s, e in chain.groups):
            if _looks_like_year(digits, chain) or _followed_by_unit(text, chain.end):
                continue
            if _NOT_CODE_BEFORE.search(work[max(0, chain.start - 15) : chain.start]):
                continue
            scan.hide(chain.start, chain.end, CODE)


def _card_inside(chain: Chain) -> tuple[int, int] | None:
    """Sixteen digits in four groups of four inside a longer chain ("… 275 номер 2200 0312 5567 8840")."""
    groups = chain.groups
    for i in range(len(groups) - 3):
        four = groups[i : i + 4]
        if all(e - s == 4 for s, e in four) and (luhn_valid(chain.digits(i, i + 4)) or len(groups) > 4):
            return four[0][0], four[-1][1]
    return None


# -- the pass ------------------------------------------------------------------------------------

_DOCUMENTS = (PASSPORT, SNILS, INN, OMS, DRIVER_LICENCE, BIRTH_CERTIFICATE, CARD, CVV, BANK_ACCOUNT)
_KEEP_LABELS = ("bik", "correspondent", "application", "error", "version", "postal", "department", "sum")


def find(text: str, *, names: bool = True) -> tuple[list[Span], list[tuple[int, int, str]]]:
    """Sensitive spans (sorted) and what was deliberately kept, for one message."""
    scan = _Scan(text)
    _emails(scan)
    _keeps(scan, errors_only=True)
    _passwords(scan)
    for start, end in people.addresses(text):
        scan.hide(start, end, ADDRESS)
    _dates(scan)
    _lettered_documents(scan)
    _keeps(scan)
    _official_numbers(scan)  # before the labels: "СНИЛС или позвоните 8 800 100-70-10" names no SNILS
    shapes = _labelled(scan, (*_DOCUMENTS, *_KEEP_LABELS))
    _same_shape(scan, shapes)
    _snils_format(scan)
    _phones(scan)
    _labelled(scan, (CODE,))
    _unlabelled(scan)
    if names:
        for start, end in people.names(text):
            scan.hide(start, end, NAME)
    return sorted(scan.spans, key=lambda s: s.start), scan.kept
