"""Personal data, measured: the labelled set with the issue's thresholds, and the cases the issue
names (invented values of the same shapes), one per rule, so a broken rule fails by name."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.pii import PII_SET, TARGETS, evaluate, finder, read_set
from bot.safety import MARKS, find_spans, redact


@pytest.fixture(scope="module")
def report():
    return evaluate(read_set(PII_SET), finder("rules"))


def test_the_labelled_set_is_big_enough_to_mean_something():
    rows = read_set(PII_SET)
    assert len(rows) >= 400
    assert sum(1 for r in rows if not r["spans"]) + sum(len(r["keep"]) for r in rows) >= 150
    assert {r["register"] for r in rows} == {"chat", "formal"}


def test_recall_on_the_labelled_set(report):
    missed = [f"#{i} {c}: {v!r}" for i, c, v in report.missed]
    assert report.recall >= TARGETS["recall"], "\n".join(missed)


def test_the_fresh_messages_written_after_tuning_pass_too():
    """50 messages the tuner wrote after tuning (a check against overfitting, not an independent one)."""
    fresh = evaluate(read_set(PII_SET.with_name("pii_fresh.jsonl")), finder("rules"))
    assert fresh.recall >= TARGETS["recall"], fresh.missed
    assert fresh.precision >= TARGETS["precision"], fresh.over
    assert fresh.harmless_share <= TARGETS["harmless_altered"], fresh.over
    assert not fresh.keeps_destroyed, fresh.destroyed


def test_ordinary_questions_are_left_as_written():
    """The 526 topic-labelled questions of dev.tsv and locked.tsv are what citizens ask every day."""
    from bench.common import DEV_TSV, LOCKED_TSV

    texts = [line.split("\t")[0] for path in (DEV_TSV, LOCKED_TSV) for line in path.read_text("utf-8").splitlines()[1:]]
    altered = [(t, redact(t).text) for t in texts if redact(t).found]
    assert len(texts) > 500
    assert len(altered) <= TARGETS["harmless_altered"] * len(texts), altered


def test_every_category_is_mostly_found(report):
    weak = {c: f"{h}/{t}" for c, (h, t) in report.per_category.items() if h / t < 0.9}
    assert weak == {}


def test_precision_on_the_labelled_set(report):
    assert report.precision >= TARGETS["precision"], report.over


def test_harmless_messages_stay_as_written(report):
    assert report.harmless_share <= TARGETS["harmless_altered"], report.over


def test_what_staff_need_survives(report):
    kept = sum(report.keeps.values())
    assert sum(report.keeps_destroyed.values()) <= 0.01 * kept, report.destroyed


# What the issue lists as missed or destroyed, with invented values of the same shapes.
HIDDEN = [
    ("пароль от госуслуг: Vesna2020", "Vesna2020", "password"),
    ("пароль такой: Kotik_77", "Kotik_77", "password"),
    ("пароль старый был Lipa2019, а новый Lipa2020!", "Lipa2020!", "password"),
    ("Zx9kq2Lm вот мой пароль", "Zx9kq2Lm", "password"),
    ("код 5 минут назад: 639201", "639201", "code"),
    ("пришли два кода: 1357 и 8642", "8642", "code"),
    ("код из смс 1984 ввожу — неверный", "1984", "code"),
    ("СЕРИЯ 4512 НОМЕР 778899", "778899", "passport"),
    ("паспорт 45 12, 778899", "778899", "passport"),
    ("паспорт 4512 778899, а у мужа 4513 665544", "4513 665544", "passport"),
    ("СНИЛС 123-456-789 00", "123-456-789 00", "snils"),  # a wrong check digit: labelled, so hidden
    ("СНИЛС 123.456.789 64", "123.456.789 64", "snils"),
    ("вот 123-456-789 64 это снилс", "123-456-789 64", "snils"),
    ("карта 2200 1234 5678 9010 3 раза отклонена", "2200 1234 5678 9010", "card"),
    ("мой ИНН 771234567890", "771234567890", "inn"),
    ("полис ОМС 7711 2233 4455 6677", "7711 2233 4455 6677", "oms"),
    ("водительское удостоверение 50 ОК 654321", "50 ОК 654321", "driver_licence"),
    ("свидетельство о рождении III-ИК 246810", "III-ИК 246810", "birth_certificate"),
    ("CVC-код 907 на обороте", "907", "cvv"),
    ("номер карты 4276-3800-1234-5678, CVV2 - 321", "321", "cvv"),
    ("Звоню с номера 8 926 555 44 33, не могу дозвониться на 115", "8 926 555 44 33", "own_phone"),
    ("карта действует до 04/28", "04/28", "card_expiry"),
    ("р/с 40817810012345678901, БИК 044525225", "40817810012345678901", "bank_account"),
    ("меня зовут Сидорова Мария Павловна", "Сидорова Мария Павловна", "name"),
    ("заявитель Кузнецов А.В. не может войти", "Кузнецов А.В.", "name"),
    ("дата рождения 14.11.1979", "14.11.1979", "birth_date"),
    ("живу г. Курск, ул. Садовая, д. 8, кв. 41", "ул. Садовая, д. 8, кв. 41", "address"),
    ("мой номер +7 912 345-67-89, смс не приходят", "+7 912 345-67-89", "own_phone"),
    ("перезвоните мне 8-926-111-22-33", "8-926-111-22-33", "own_phone"),
    ("не приходит смс на 89261112233", "89261112233", "own_phone"),
    ("Как поменять номер телефона? Старый 8 916 000-11-22 больше не работает", "8 916 000-11-22", "own_phone"),
    ("почта для ответа maria.s@example.ru", "maria.s@example.ru", "own_email"),
]

KEPT = [
    ("номер заявления 4419025581, паспорт загружен", "4419025581"),
    ("при входе код ошибки 1001", "1001"),
    ("смс от 0919 не приходят", "0919"),
    ("ИНН получателя 7707329152, БИК 044525000", "7707329152"),
    ("пароль был верный, но не пускает", "верный"),
    ("мне звонили с +7 495 765-43-21, это госуслуги?", "+7 495 765-43-21"),
    ("я звонил на +7 495 765-43-21, никто не ответил", "+7 495 765-43-21"),
    ("почему госпошлина за паспорт 6000, а не 5000?", "6000"),
    ("на 8 800 100-70-10 не дозвониться, 115 тоже", "8 800 100-70-10"),
    ("оплатил госпошлину 2 000 руб. 12.03.2025 в 14:35", "12.03.2025"),
    ("приложение версии 4.15.2 вылетает", "4.15.2"),
    ("отделение почты 101000 не выдаёт письмо", "101000"),
    ("не могу загрузить СНИЛС и паспорт", "СНИЛС"),
    ("МФЦ на ул. Ленина, д. 5 не работает", "ул. Ленина, д. 5"),
    ("ввожу код 3 раза, пишет неверный", "3 раза"),
    ("нужен ли СНИЛС или звонить 8 800 100-70-10?", "8 800 100-70-10"),  # a label before the hotline
]


@pytest.mark.parametrize(("text", "secret", "kind"), HIDDEN)
def test_personal_data_is_hidden(text, secret, kind):
    red = redact(text)
    assert secret not in red.text
    assert not set(re.findall(r"\w{4,}", secret)) & set(re.findall(r"\w{4,}", red.for_matching))
    assert MARKS[kind] in red.text, red.text


@pytest.mark.parametrize(("text", "kept"), KEPT)
def test_what_staff_need_is_kept(text, kept):
    assert kept in redact(text).text


def test_a_label_word_alone_is_not_data():
    for text in ("где ввести СНИЛС?", "паспорт поменяла, что делать", "какой пароль придумать", "пришёл код"):
        assert redact(text).text == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789 -.,:/№абвгдежзПКСНИЛпаролькодкартаул.д.кв@+()\n"), max_size=120))
def test_any_text_is_redacted_without_error(text):
    spans = find_spans(text)
    assert all(0 <= s.start < s.end <= len(text) for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))
    assert redact(redact(text).text).found <= redact(text).found | {"password", "code"}


def test_the_ner_model_is_not_loaded_unless_asked_for():
    """The rules found names better than natasha's NER on the labelled set: the bot never loads it."""
    import subprocess
    import sys

    script = (
        "import sys; from bot.safety import redact; redact('я Иванов Иван Иванович'); print('natasha' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
