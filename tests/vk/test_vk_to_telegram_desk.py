"""VK and Telegram in one process share the operators' desk: a VK citizen's ticket appears as a
Telegram forum topic, and what an operator writes there reaches the citizen in VK."""

from __future__ import annotations

import asyncio

from adapters.telegram import TelegramAdapter
from adapters.vk import VkAdapter
from bot.config import Settings
from bot.dialogue import Dialogue
from fakes.telegram_api import FAST as FAST_TG
from fakes.telegram_api import OPERATOR, OPS, FakeBotAPI
from fakes.vk_api import FAST, GROUP_ID, TOKEN, FakeVk, eventually

PEER = 4242


async def test_a_vk_ticket_is_answered_from_the_telegram_forum(fake_vk: FakeVk, dialogue: Dialogue):
    telegram = FakeBotAPI()
    await telegram.start()
    telegram.members[OPERATOR] = "member"
    settings = Settings(
        telegram_token="123456:TEST-token-never-logged",
        telegram_api_base=telegram.base_url,
        telegram_operators_chat_id=OPS,
        vk_group_token=TOKEN,
        vk_group_id=GROUP_ID,
        vk_api_base=f"{fake_vk.url}/method",
    )
    stop = asyncio.Event()
    vk = VkAdapter(settings, dialogue, **FAST)
    tasks = [
        asyncio.create_task(TelegramAdapter(settings, dialogue, FAST_TG).run(stop)),
        asyncio.create_task(vk.run(stop)),
    ]
    try:
        await asyncio.wait_for(vk.ready.wait(), 5)
        await fake_vk.push(fake_vk.message_new(PEER, "/operator", None, None))
        await eventually(lambda: any("Номер обращения" in m.text for m in fake_vk.to(PEER)))
        ticket = await dialogue.store.open_ticket_for("vk", str(PEER))
        assert ticket is not None

        [topic] = await telegram.wait_for(lambda c: c.method == "createForumTopic")
        assert topic.params["name"].startswith(f"№ {ticket.number} · ")
        [card] = await telegram.wait_for(
            lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS and "Платформа: vk" in c.params["text"]
        )
        thread = card.params["message_thread_id"]

        await telegram.push(
            telegram.message(OPS, "Проверьте папку «Спам»", user_id=OPERATOR, chat_type="supergroup", thread=thread)
        )
        await eventually(lambda: any("Проверьте папку «Спам»" in m.text for m in fake_vk.to(PEER)))
        answer = next(m for m in fake_vk.to(PEER) if "Проверьте папку «Спам»" in m.text)
        assert f"№ {ticket.number}" in answer.text
        assert not any("Проверьте папку «Спам»" in c.params.get("text", "") for c in telegram.sent(PEER))
    finally:
        stop.set()
        await fake_vk.release_pollers()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        await telegram.close()
