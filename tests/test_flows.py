"""Guided flows through the core: entering, walking, navigation, leaving, forged buttons."""

from __future__ import annotations

import pytest
from scenario import Chat

from bot.messages import Reply

FLOW = "code_not_arriving"


def nav(k) -> dict[str, str]:
    return {k.text("btn_back"): "back", k.text("btn_home"): "home", k.text("btn_operator"): "op"}


def assert_at_step(chat: Chat, k, flow_id: str, step_id: str, *, first: bool = False) -> None:
    step = k.flows[flow_id].steps[step_id]
    assert chat.replies[-1].text == step.text
    labels = [b.label for b in chat.replies[-1].buttons]
    for i, option in enumerate(step.options):
        assert f"o:{flow_id}:{step_id}:{i}" in chat.payloads
        assert option.label in labels
    expected_nav = {label: payload for label, payload in nav(k).items() if not (first and payload == "back")}
    for label, payload in expected_nav.items():
        assert chat.button(label).payload == payload
    if first:
        assert "back" not in chat.payloads


async def test_a_matching_question_starts_the_flow(chat, dialogue):
    await chat.say("не приходит смс с кодом")
    flow = dialogue.knowledge.flows[FLOW]
    assert_at_step(chat, dialogue.knowledge, FLOW, flow.start, first=True)


async def test_a_menu_payload_starts_the_flow(chat, dialogue):
    await chat.say("/start")
    assert f"f:{FLOW}" in chat.payloads
    await chat.press(f"f:{FLOW}")
    assert_at_step(chat, dialogue.knowledge, FLOW, dialogue.knowledge.flows[FLOW].start, first=True)


async def test_a_related_button_payload_starts_the_flow(chat, dialogue):
    await chat.press(f"a:{FLOW}")  # "a:" buttons of related entries may name a flow too
    assert_at_step(chat, dialogue.knowledge, FLOW, dialogue.knowledge.flows[FLOW].start, first=True)


async def test_a_deep_link_starts_the_flow(chat, dialogue):
    await chat.say(f"/start {FLOW}")
    assert_at_step(chat, dialogue.knowledge, FLOW, dialogue.knowledge.flows[FLOW].start, first=True)


async def test_every_step_of_every_flow_has_navigation(chat, dialogue):
    k = dialogue.knowledge
    for flow in k.flows.values():
        await chat.press(f"f:{flow.id}")
        assert_at_step(chat, k, flow.id, flow.start, first=True)
        for step in flow.steps.values():
            if step.id == flow.start:
                continue
            # Reach the step through an option that leads to it (every step is reachable: check.py).
            source = next((s, i) for s in flow.steps.values() for i, o in enumerate(s.options) if o.goto == step.id)
            await chat.press(f"o:{flow.id}:{source[0].id}:{source[1]}")
            assert chat.replies[-1].text == step.text
            for label in nav(k):
                assert label in chat.labels, f"{flow.id}/{step.id} lacks {label!r}"
            if step.end:
                assert f"y:{flow.id}" in chat.payloads
                assert f"n:{flow.id}" in chat.payloads


async def walk_to_second_step(chat: Chat, k) -> tuple[str, str]:
    flow = k.flows[FLOW]
    start = flow.steps[flow.start]
    index = next(i for i, o in enumerate(start.options) if o.goto)
    await chat.press(f"f:{FLOW}")
    await chat.press(f"o:{FLOW}:{start.id}:{index}")
    return start.id, start.options[index].goto


async def test_walking_options_and_going_back_and_home(chat, dialogue):
    k = dialogue.knowledge
    start, second = await walk_to_second_step(chat, k)
    assert_at_step(chat, k, FLOW, second)
    assert "back" in chat.payloads
    await chat.press("back")
    assert_at_step(chat, k, FLOW, start, first=True)
    await chat.press("home")
    assert chat.replies[-1].text == k.text("welcome")
    session = await dialogue.store.load_session("test", "1")
    assert session.flow_id is None
    assert f"{FLOW}/{second}" in session.steps_tried


async def test_typed_button_label_presses_it(chat, dialogue):
    k = dialogue.knowledge
    flow = k.flows[FLOW]
    start = flow.steps[flow.start]
    index = next(i for i, o in enumerate(start.options) if o.goto)
    await chat.press(f"f:{FLOW}")
    await chat.say(start.options[index].label.lower() + "!")
    assert_at_step(chat, k, FLOW, start.options[index].goto)
    await chat.say(k.text("btn_back"))
    assert_at_step(chat, k, FLOW, start.id, first=True)


async def test_helped_ends_the_flow(chat, dialogue):
    k = dialogue.knowledge
    flow = k.flows[FLOW]
    await chat.press(f"f:{FLOW}")
    step = flow.steps[flow.start]
    while not step.end:  # follow the first step-to-step option down to an end step
        index = next(i for i, o in enumerate(step.options) if o.goto)
        await chat.press(f"o:{FLOW}:{step.id}:{index}")
        step = flow.steps[step.options[index].goto]
    assert chat.replies[-1].text == step.text
    await chat.press(f"y:{FLOW}")
    assert chat.text == k.text("flow_helped")
    assert (await dialogue.store.load_session("test", "1")).flow_id is None


async def test_a_different_question_inside_a_flow_asks_before_leaving(chat, dialogue):
    k = dialogue.knowledge
    await chat.press(f"f:{FLOW}")
    await chat.say("забыл пароль, как восстановить")
    assert chat.text == k.text("flow_leave_confirm", title=k.flows[FLOW].title)
    assert chat.payloads == ["leave", "stay"]
    await chat.press("stay")
    assert_at_step(chat, k, FLOW, k.flows[FLOW].start, first=True)

    await chat.say("забыл пароль, как восстановить")
    await chat.press("leave")
    session = await dialogue.store.load_session("test", "1")
    assert session.last_topic == "forgot_password"
    assert session.flow_id != FLOW
    assert chat.text != k.text("flow_leave_confirm", title=k.flows[FLOW].title)


async def test_small_talk_inside_a_flow_keeps_the_flow(chat, dialogue):
    await chat.press(f"f:{FLOW}")
    await chat.say("спасибо")
    assert chat.text in {i.reply for i in dialogue.knowledge.smalltalk}
    assert (await dialogue.store.load_session("test", "1")).flow_id == FLOW


@pytest.mark.parametrize(
    "payload",
    [
        "o:nope:x:9",
        f"o:{FLOW}:where:9",
        f"o:{FLOW}:nostep:0",
        "r:99999:5",
        "f:no_such_flow",
        "a:no_such_entry",
        "garbage",
        "o:::",
        "x" * 100,
        "a:" + "я" * 50,
        "",
        "back\n",
        "r:1:9",
    ],
)
async def test_forged_payloads_get_a_polite_reply(chat, dialogue, payload):
    replies = await chat.press(payload)
    assert replies
    assert replies[0].text == dialogue.knowledge.text("unknown_button")
    assert await dialogue.store.list_tickets() == []


async def test_a_forged_payload_inside_a_flow_keeps_the_conversation_usable(chat, dialogue):
    k = dialogue.knowledge
    await chat.press(f"f:{FLOW}")
    await chat.press("o:nope:x:9")
    assert chat.text == k.text("unknown_button")
    await chat.press(f"f:{FLOW}")
    assert_at_step(chat, k, FLOW, k.flows[FLOW].start, first=True)


def test_reply_buttons_fit_telegram(shipped):
    k, _ = shipped
    from bot.flows import menu_buttons, step_reply

    replies: list[Reply] = [Reply("menu", menu_buttons(k))]
    for flow in k.flows.values():
        for step in flow.steps.values():
            replies.append(step_reply(k, flow, step, can_go_back=True))
    for reply in replies:
        for button in reply.buttons:
            assert len(button.payload.encode()) <= 64
            assert button.payload.isascii()
