"""VK and Telegram in one process share the operators' desk: a VK citizen's ticket appears as a
Telegram forum topic, and what an operator writes there reaches the citizen in VK."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "telegram"))

from fake_bot_api import FAST as FAST_TG  # noqa: E402
from fake_bot_api import OPERATOR, OPS, FakeBotAPI  # noqa: E402
from fake_vk import FAST, GROUP_ID, TOKEN, FakeVk, eventually  # noqa: E402

from adapters.telegram import TelegramAdapter  # noqa: E402
from adapters.vk import VkAdapter  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.dialogue import Dialogue  # noqa: E402

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
