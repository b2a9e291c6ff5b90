"""How replies look in VK and how button payloads come back (pure functions, no network)."""

from __future__ import annotations

import json

import pytest

from adapters.vk.keyboard import (
    UNKNOWN_CLIENT,
    ClientInfo,
    Pressed,
    decode_payload,
    random_id,
    render,
    split_text,
)
from bot.messages import Button, Reply

CALLBACK = ClientInfo(keyboard=True, inline_keyboard=True, button_actions=frozenset({"text", "callback"}))
PLAIN = ClientInfo(keyboard=False, inline_keyboard=False, button_actions=frozenset())


def reply_with(n: int, label: str = "Вариант") -> Reply:
    return Reply("Выберите:", tuple(Button(f"{label} {i}", f"o:flow:step:{i % 10}") for i in range(n)))


def rows(keyboard: str | None) -> list[list[dict]]:
    assert keyboard is not None
    return json.loads(keyboard)["buttons"]


@pytest.mark.parametrize(("count", "row_count"), [(1, 1), (6, 6), (7, 4), (10, 5)])
def test_inline_keyboards_stay_within_six_rows_and_ten_buttons(count: int, row_count: int):
    rendered = render(reply_with(count), CALLBACK)
    keyboard = json.loads(rendered.keyboard or "")
    assert keyboard["inline"] is True
    assert len(keyboard["buttons"]) == row_count
    assert sum(len(r) for r in keyboard["buttons"]) == count
    assert rendered.numbered == ()


def test_more_than_ten_buttons_go_to_a_regular_keyboard():
    keyboard = json.loads(render(reply_with(11), CALLBACK).keyboard or "")
    assert keyboard["inline"] is False
    assert len(keyboard["buttons"]) <= 10
    assert sum(len(r) for r in keyboard["buttons"]) == 11


def test_more_than_forty_buttons_become_a_numbered_list():
    rendered = render(reply_with(41), CALLBACK)
    assert rendered.keyboard is None
    assert "41. Вариант 40" in rendered.parts[-1]
    assert len(rendered.numbered) == 41


def test_button_kind_follows_the_client():
    callback = rows(render(reply_with(2), CALLBACK).keyboard)
    text = rows(render(reply_with(2), UNKNOWN_CLIENT).keyboard)
    assert {b["action"]["type"] for r in callback for b in r} == {"callback"}
    assert {b["action"]["type"] for r in text for b in r} == {"text"}
    assert json.loads(text[1][0]["action"]["payload"]) == {"p": "o:flow:step:1"}


def test_long_labels_are_cut_with_an_ellipsis():
    long = Reply("?", (Button("Очень длинная надпись на кнопке, которая не помещается в сорок символов", "op"),))
    label = rows(render(long, CALLBACK).keyboard)[0][0]["action"]["label"]
    assert len(label) <= 40
    assert label.endswith("…")


def test_clients_without_keyboards_get_numbered_options():
    rendered = render(Reply("Куда ждёте код?", (Button("По СМС", "o:c:w:0"), Button("На почту", "o:c:w:1"))), PLAIN)
    assert rendered.keyboard is None
    assert rendered.parts == ("Куда ждёте код?\n\nОтветьте цифрой:\n1. По СМС\n2. На почту",)
    assert [b.payload for b in rendered.numbered] == ["o:c:w:0", "o:c:w:1"]


def test_client_info_is_read_from_the_event():
    info = ClientInfo.from_event({"button_actions": ["text", "callback"], "keyboard": True, "inline_keyboard": False})
    assert info.callback
    assert not info.inline_keyboard
    assert ClientInfo.from_event(None) == UNKNOWN_CLIENT


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ('{"p":"f:fraud"}', Pressed(core_payload="f:fraud")),
        ({"p": "op"}, Pressed(core_payload="op")),  # message_event delivers an object
        ('{"command":"start"}', Pressed(start=True)),
        ('{"p":5}', Pressed(forged=True)),
        ('{"p":""}', Pressed(forged=True)),
        ('{"x":"op"}', Pressed(forged=True)),
        ('["op"]', Pressed(forged=True)),
        ("op", Pressed(forged=True)),
        ('{"p":"' + "a" * 300 + '"}', Pressed(forged=True)),
    ],
)
def test_payloads_coming_back_are_validated(raw: object, expected: Pressed | None):
    assert decode_payload(raw) == expected


def test_text_is_split_at_line_breaks_within_the_limit():
    lines = [f"строка {i:03d} " + "x" * 40 for i in range(300)]
    parts = split_text("\n".join(lines))
    assert len(parts) > 1
    assert all(len(p) <= 4096 for p in parts)
    assert "\n".join(parts).split("\n") == lines  # nothing lost, no line cut


def test_a_single_overlong_line_is_cut_at_spaces():
    words = " ".join(["слово"] * 2000)
    parts = split_text(words, limit=1000)
    assert all(len(p) <= 1000 for p in parts)
    assert " ".join(parts).split() == words.split()


def test_random_ids_are_stable_int32_and_distinct_per_part():
    first = random_id(501, "ev000001:0", 0)
    assert first == random_id(501, "ev000001:0", 0)
    assert 0 < first < 2**31
    assert len({random_id(501, "ev000001:0", part) for part in range(5)}) == 5
    assert random_id(502, "ev000001:0", 0) != first
