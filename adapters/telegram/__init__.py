"""The Telegram adapter (aiogram 3): `TelegramAdapter(settings, dialogue).run(stop)`."""

from adapters.telegram.adapter import TelegramAdapter, TelegramOptions
from adapters.telegram.sender import Limits

__all__ = ["Limits", "TelegramAdapter", "TelegramOptions"]
