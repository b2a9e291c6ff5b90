"""The adapter's pure parts: splitting, keyboards, the rate limiter, card buttons, webhook path."""

from __future__ import annotations

import asyncio

import pytest

from adapters.telegram.desk import card_buttons, parse_card_action
from adapters.telegram.render import keyboard, render, split_text, utf16_len
from adapters.telegram.sender import Limits, RateLimiter, backoff
from adapters.telegram.webhook import webhook_path
from bot.messages import Button, Reply


def test_short_text_is_one_piece():
    assert split_text("Привет") == ["Привет"]


def test_long_text_is_cut_at_line_breaks_within_the_limit():
    lines = [f"{i:03} " + "я" * 95 for i in range(100)]  # 100 lines of 99 characters
    pieces = split_text("\n".join(lines), limit=1000)
    assert all(utf16_len(p) <= 1000 for p in pieces)
    assert "\n".join(pieces) == "\n".join(lines)
    assert all(p.split("\n")[0][:3].isdigit() for p in pieces)  # every piece starts at a line


def test_a_single_huge_line_is_cut_at_spaces_and_emoji_count_double():
    text = " ".join(["📞слово"] * 300)
    pieces = split_text(text, limit=100)
    assert all(utf16_len(p) <= 100 for p in pieces)
    assert " ".join(p.strip() for p in pieces) == text


def test_keyboard_one_button_per_row_long_labels_cut_oversized_payloads_dropped():
    markup = keyboard((Button("а" * 80, "a:x"), Button("Ок", "x" * 65), Button("Телефоны", "phone")))
    assert markup is not None
    rows = markup.inline_keyboard
    assert [len(row) for row in rows] == [1, 1]
    assert len(rows[0][0].text) == 64
    assert rows[0][0].text.endswith("…")
    assert rows[1][0].callback_data == "phone"


def test_render_puts_buttons_on_the_last_piece_only():
    methods = render(Reply("строка\n" * 1000, (Button("Ок", "home"),)), chat_id=1)
    assert len(methods) >= 2
    assert all(m.reply_markup is None for m in methods[:-1])
    assert methods[-1].reply_markup is not None
    assert all(m.parse_mode is None for m in methods)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_rate_limiter_one_message_per_second_per_chat():
    clock = FakeClock()
    limiter = RateLimiter(Limits(), clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await limiter.wait(7)
    assert clock.slept == pytest.approx([1.0, 1.0])


async def test_rate_limiter_thirty_per_second_overall():
    clock = FakeClock()
    limiter = RateLimiter(Limits(), clock=clock, sleep=clock.sleep)
    delays = [limiter.reserve(chat) for chat in range(1, 61)]  # 60 chats at once
    assert delays[:1] == [0.0]
    assert delays[29] == pytest.approx(29 / 30)
    assert delays[59] == pytest.approx(59 / 30)


async def test_rate_limiter_groups_are_slower_and_retry_after_holds_the_chat():
    clock = FakeClock()
    limiter = RateLimiter(Limits(), clock=clock, sleep=clock.sleep)
    assert limiter.reserve(-100) == 0.0
    assert limiter.reserve(-100) == pytest.approx(3.0)
    limiter.hold(5, 7.0)
    assert limiter.reserve(5) == pytest.approx(7.0)


async def test_rate_limiter_a_backlog_in_the_operators_group_does_not_hold_up_citizens():
    """Found by the operators' chat kill test: 50 new tickets queue 100 messages for the group, 3 s
    apart; the citizens' replies must not wait five minutes behind them."""
    clock = FakeClock()
    limiter = RateLimiter(Limits(), clock=clock, sleep=clock.sleep)
    group = [limiter.reserve(-100) for _ in range(20)]
    assert group[-1] == pytest.approx(57.0)
    assert limiter.reserve(5) <= 1 / 30 + 1e-9
    private = [limiter.reserve(chat) for chat in range(6, 66)]  # still 30 a second overall
    assert len({round(d * 30) for d in [*group, *private]}) == len(group) + len(private)
    assert max(private) == pytest.approx(61 / 30)


def test_backoff_doubles_up_to_the_cap():
    limits = Limits(retry_base=1.0, retry_cap=600.0)
    assert [backoff(limits, a) for a in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(limits, 100) == 600.0


def test_card_buttons_round_trip_and_forgeries_are_refused():
    take, close = card_buttons(12)
    assert parse_card_action(take.payload) == ("take", 12)
    assert parse_card_action(close.payload) == ("close", 12)
    for forged in ("desk:delete:12", "desk:take:x", "desk:take", "", None, "r:12:5"):
        assert parse_card_action(forged) is None


def test_webhook_path_comes_from_the_url():
    assert webhook_path("https://bot.example.org/tg/hook") == "/tg/hook"
    assert webhook_path("https://bot.example.org") == "/telegram/webhook"


class _AnsweringBot:
    """Stands in for aiogram's Bot in Membership: answers getChatMember slowly, counting calls."""

    def __init__(self, statuses: dict[int, str]):
        self.statuses = statuses
        self.asked: list[int] = []
        self.release = asyncio.Event()

    async def __call__(self, method):
        from aiogram.types import ChatMemberLeft, ChatMemberMember, User

        self.asked.append(method.user_id)
        await self.release.wait()
        user = User(id=method.user_id, is_bot=False, first_name="x")
        if self.statuses.get(method.user_id) == "member":
            return ChatMemberMember(user=user)
        return ChatMemberLeft(user=user)


def _member_update(user_id: int, status: str):
    from aiogram.types import ChatMemberUpdated

    user = {"id": user_id, "is_bot": False, "first_name": "x"}
    return ChatMemberUpdated.model_validate(
        {
            "chat": {"id": -100, "type": "supergroup"},
            "from": user,
            "date": 0,
            "old_chat_member": {"status": "left", "user": user},
            "new_chat_member": {"status": status, "user": user, **({"until_date": 0} if status == "kicked" else {})},
        }
    )


async def test_membership_is_asked_once_per_person_and_cached_until_the_ttl():
    from types import SimpleNamespace

    from adapters.telegram.staff import Membership

    now = [0.0]
    bot = _AnsweringBot({1: "member"})
    membership = Membership(SimpleNamespace(bot=bot), -100, ttl=300, clock=lambda: now[0])  # type: ignore[arg-type]
    burst = [asyncio.create_task(membership.is_member(1)) for _ in range(5)] + [
        asyncio.create_task(membership.is_member(2))
    ]
    await asyncio.sleep(0.01)
    bot.release.set()
    assert await asyncio.gather(*burst) == [True] * 5 + [False]
    assert sorted(bot.asked) == [1, 2]  # one question per person for the whole burst
    assert await membership.is_member(1) is True
    assert len(bot.asked) == 2  # cached
    now[0] += 301
    bot.statuses[1] = "left"
    assert await membership.is_member(1) is False  # asked again after the TTL
    assert len(bot.asked) == 3


async def test_a_chat_member_update_wins_over_an_answer_in_flight():
    from types import SimpleNamespace

    from adapters.telegram.staff import Membership

    bot = _AnsweringBot({7: "member"})  # a stale answer: 7 has just been removed
    membership = Membership(SimpleNamespace(bot=bot), -100)  # type: ignore[arg-type]
    asking = asyncio.create_task(membership.is_member(7))
    await asyncio.sleep(0.01)
    membership.changed(_member_update(7, "kicked"))
    bot.release.set()
    assert await asking is False
    assert await membership.is_member(7) is False
    membership.changed(_member_update(8, "member"))  # joined: believed without asking
    assert await membership.is_member(8) is True
    assert bot.asked == [7]


async def test_rate_limiter_a_waiting_group_does_not_hold_back_other_chats():
    # Found by the load suite: the operators' group (3 s apart) reserved its slots far ahead and
    # dragged the overall slot along, so every citizen's reply waited behind the desk's backlog.
    clock = FakeClock()
    limiter = RateLimiter(Limits(), clock=clock, sleep=clock.sleep)
    desk = [limiter.reserve(-100) for _ in range(6)]
    assert desk == pytest.approx([0.0, 3.0, 6.0, 9.0, 12.0, 15.0])
    citizens = [limiter.reserve(chat) for chat in range(1, 31)]
    assert max(citizens) < 1.1  # 30 a second overall, around the desk's slot at 0
    assert len({round(d * 30) for d in [*desk, *citizens]}) == 36  # no two sends share a slot
