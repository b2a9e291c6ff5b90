"""Nothing unredacted reaches the desk: after a conversation full of codes, passwords and card
numbers (in texts, captions and forwarded messages), no call the bot made to the Bot API — and no
message copied into the operators' forum as Telegram would show it — contains any of them."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bot.dialogue import Dialogue
from fakes.telegram_api import OPERATOR, OPS, PHOTO, FakeBotAPI

pytestmark = pytest.mark.usefixtures("running")

CITIZEN = 701
SECRETS = (
    "482913",  # an SMS code
    "771904",
    "390517",
    "Qwerty123",  # passwords
    "Zx9vbn7Q2",
    "4111 1111 1111 1111",  # card numbers (Luhn-valid)
    "4111111111111111",
    "5555555555554444",
    "5555 5555 5555 4444",
)
DOCUMENT = {"document": {"file_id": "doc1", "file_unique_id": "d1", "file_name": "scan.pdf"}}
VOICE = {"voice": {"file_id": "voice1", "file_unique_id": "v1", "duration": 3}}
POLL = {
    "poll": {
        "id": "p1",
        "question": "код 390517 верный?",
        "options": [
            {"text": "да", "voter_count": 0, "persistent_id": "o1"},
            {"text": "нет", "voter_count": 0, "persistent_id": "o2"},
        ],
        "allows_revoting": False,
        "members_only": False,
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
    }
}


async def until(check, within: float = 10.0) -> None:
    for _ in range(int(within / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("did not happen in time")


def forwarded(fake: FakeBotAPI, text: str) -> dict:
    update = fake.message(CITIZEN, text)
    origin = {"id": 5555, "is_bot": False, "first_name": "Мошенник"}
    update["message"]["forward_origin"] = {"type": "user", "date": int(time.time()), "sender_user": origin}
    return update


async def test_no_secret_reaches_any_bot_api_call(fake: FakeBotAPI, dialogue: Dialogue):
    fake.members[OPERATOR] = "member"
    before_ticket = [
        fake.message(CITIZEN, "Пришёл код 482913, а войти не могу"),
        fake.message(CITIZEN, "пароль: Qwerty123 не подходит"),
        forwarded(fake, "Сообщите код из смс: 771904, это служба безопасности"),
        fake.message(CITIZEN, "/operator"),
    ]
    for update in before_ticket:
        await fake.push(update)
    await until(lambda: dialogue.store.open_ticket_for("telegram", str(CITIZEN)))
    replied = len(await fake.wait_sent(CITIZEN, 4))

    in_ticket = [
        fake.message(CITIZEN, **PHOTO, caption="Вот скрин, код 482913, карта 4111 1111 1111 1111"),
        fake.message(CITIZEN, **DOCUMENT, caption="Пароль Zx9vbn7Q2 и карта 5555555555554444"),
        fake.message(CITIZEN, **VOICE, caption="карта 5555 5555 5555 4444"),
        forwarded(fake, "Ваш код подтверждения 771904. Никому не сообщайте"),
        fake.message(CITIZEN, **POLL),
        fake.message(CITIZEN, **PHOTO),  # no caption at all
    ]
    for update in in_ticket:
        await fake.push(update)
    await fake.wait_sent(CITIZEN, replied + len(in_ticket))
    copies = await fake.wait_for(lambda c: c.method == "copyMessage" and c.ok, 4)
    [card, *_] = await fake.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS)
    thread = card.params["message_thread_id"]
    # Staff write a code back by mistake: it is hidden on the way to the citizen and the desk too.
    await fake.push(fake.message(OPS, "Назовите код 482913?", user_id=OPERATOR, chat_type="supergroup", thread=thread))
    await fake.wait_sent(CITIZEN, replied + len(in_ticket) + 1)
    await fake.wait_for(
        lambda c: (
            c.method == "sendMessage" and c.params.get("message_thread_id") == thread and "[other]" in c.params["text"]
        )
    )

    everything = json.dumps([c.params for c in fake.calls] + fake.copies, ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in everything, secret
    # The copies did happen, with the redacted captions in place of the originals.
    assert len(copies) == 4
    captions = [c.get("caption") for c in fake.copies]
    assert captions == [
        "Вот скрин, код [код скрыт], карта [номер карты скрыт]",
        "Пароль [пароль скрыт] и карта [номер карты скрыт]",
        "карта [номер карты скрыт]",
        None,
    ]
    assert all(c["message_thread_id"] == thread for c in fake.copies)
    # What staff read in the topic still tells them what happened.
    topic = " ".join(
        c.params["text"] for c in fake.calls if c.params.get("message_thread_id") == thread and "text" in c.params
    )
    assert "[код скрыт]" in topic
    assert "[пароль скрыт]" in topic
    assert "[номер карты скрыт]" in topic
    assert "[other]" in topic  # the poll: only its kind, not its text
