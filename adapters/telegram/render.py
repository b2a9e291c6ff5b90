"""A neutral `Reply` as Bot API calls: plain text split to Telegram's limit, buttons one per row."""

from __future__ import annotations

import logging

from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.messages import Button, Reply

log = logging.getLogger(__name__)

MAX_TEXT = 4096  # Telegram counts UTF-16 code units
MAX_LABEL = 64
MAX_CALLBACK_DATA = 64  # bytes


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most `limit` units, cut at line breaks (then spaces, then anywhere)."""
    text = text.strip() or "…"  # Telegram refuses an empty message
    if utf16_len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if utf16_len(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        current = ""
        while utf16_len(line) > limit:
            head = _cut(line, limit)
            pieces.append(head)
            line = line[len(head) :].lstrip(" ")
        current = line
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()]


def _cut(line: str, limit: int) -> str:
    """The longest head of `line` within `limit`, ending at a space when there is one."""
    end = 0
    size = 0
    for i, ch in enumerate(line):
        size += utf16_len(ch)
        if size > limit:
            break
        end = i + 1
    space = line.rfind(" ", 0, end)
    return line[: space + 1] if space > 0 and end < len(line) else line[:end]


def label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def keyboard(buttons: tuple[Button, ...] | list[Button]) -> InlineKeyboardMarkup | None:
    """One button per row; a payload over 64 bytes would make Telegram refuse the whole message."""
    rows = []
    for button in buttons:
        if len(button.payload.encode()) > MAX_CALLBACK_DATA or not button.payload:
            log.error("button %r dropped: its payload does not fit Telegram's 64 bytes", button.label)
            continue
        rows.append([InlineKeyboardButton(text=label(button.label), callback_data=button.payload)])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def render(reply: Reply, chat_id: int, thread_id: int | None = None) -> list[SendMessage]:
    """One message per reply (more only when the text is too long); buttons go on the last piece."""
    pieces = split_text(reply.text)
    markup = keyboard(reply.buttons)
    return [
        SendMessage(
            chat_id=chat_id,
            message_thread_id=thread_id,
            text=piece,
            parse_mode=None,  # replies are plain text; user text must never be read as markup
            reply_markup=markup if i == len(pieces) - 1 else None,
        )
        for i, piece in enumerate(pieces)
    ]
