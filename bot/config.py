"""Settings, read once from the environment into a frozen object (the composition root passes it on)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    db: Path = Path("gosbot.sqlite3")
    database_url: str = field(default="", repr=False)  # postgresql://… selects PostgreSQL over the SQLite file
    http_host: str = "127.0.0.1"
    http_port: int = 9090
    log_format: str = "text"  # text | json
    knowledge: Path = Path("knowledge")
    log_level: str = "INFO"
    db_busy_timeout: float = 30.0  # seconds to wait for another process's write lock
    retention_days: int = 90  # closed tickets' transcripts and the unanswered log are deleted after this
    # Telegram
    telegram_token: str = field(default="", repr=False)
    telegram_api_base: str = ""
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = field(default="", repr=False)
    telegram_webhook_host: str = "0.0.0.0"
    telegram_webhook_port: int = 8080
    telegram_operators_chat_id: int | None = None
    # VK
    vk_group_token: str = field(default="", repr=False)
    vk_group_id: int | None = None
    vk_api_base: str = ""
    vk_callback_secret: str = field(default="", repr=False)
    vk_confirmation_code: str = ""
    vk_callback_host: str = "0.0.0.0"
    vk_callback_port: int = 8081

    @property
    def vk_callback_mode(self) -> bool:
        """VK events come by the Callback API (else by Bots Long Poll)."""
        return bool(self.vk_callback_secret or self.vk_confirmation_code)

    def problems(self) -> list[str]:
        """Settings that would make a front end accept forged requests: each is one line, and
        `gosbot run` refuses to start while there is any (fail closed)."""
        found = []
        if self.telegram_token and self.telegram_webhook_url and not self.telegram_webhook_secret:
            found.append("TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_WEBHOOK_URL is set")
        if self.vk_group_token and self.vk_callback_mode:
            missing = [
                name
                for name, value in (("VK_CALLBACK_SECRET", self.vk_callback_secret), ("VK_GROUP_ID", self.vk_group_id))
                if not value
            ]
            if missing:
                verb = "are" if len(missing) > 1 else "is"
                found.append(
                    f"{' and '.join(missing)} {verb} required in VK Callback API mode "
                    "(set because VK_CALLBACK_SECRET or VK_CONFIRMATION_CODE is set)"
                )
        return found

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def text(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        def integer(name: str, default: int | None) -> int | None:
            value = text(name)
            if not value:
                return default
            try:
                return int(value)
            except ValueError as exc:
                raise SystemExit(f"{name} must be a whole number, got {value!r}") from exc

        return cls(
            db=Path(text("GOSBOT_DB", "gosbot.sqlite3")),
            database_url=database_url(text("GOSBOT_DATABASE_URL")),
            http_host=text("GOSBOT_HTTP_HOST", "127.0.0.1"),
            http_port=integer("GOSBOT_HTTP_PORT", 9090) or 0,
            log_format=log_format(text("GOSBOT_LOG_FORMAT", "text")),
            knowledge=Path(text("GOSBOT_KNOWLEDGE", "knowledge")),
            log_level=text("GOSBOT_LOG_LEVEL", "INFO").upper(),
            db_busy_timeout=float(integer("GOSBOT_DB_BUSY_TIMEOUT", 30) or 0),
            retention_days=integer("GOSBOT_RETENTION_DAYS", 90) or 90,
            telegram_token=text("TELEGRAM_BOT_TOKEN"),
            telegram_api_base=text("TELEGRAM_API_BASE"),
            telegram_webhook_url=text("TELEGRAM_WEBHOOK_URL"),
            telegram_webhook_secret=text("TELEGRAM_WEBHOOK_SECRET"),
            telegram_webhook_host=text("TELEGRAM_WEBHOOK_HOST", "0.0.0.0"),
            telegram_webhook_port=integer("TELEGRAM_WEBHOOK_PORT", 8080) or 8080,
            telegram_operators_chat_id=integer("TELEGRAM_OPERATORS_CHAT_ID", None),
            vk_group_token=text("VK_GROUP_TOKEN"),
            vk_group_id=integer("VK_GROUP_ID", None),
            vk_api_base=text("VK_API_BASE"),
            vk_callback_secret=text("VK_CALLBACK_SECRET"),
            vk_confirmation_code=text("VK_CONFIRMATION_CODE"),
            vk_callback_host=text("VK_CALLBACK_HOST", "0.0.0.0"),
            vk_callback_port=integer("VK_CALLBACK_PORT", 8081) or 8081,
        )


def database_url(value: str) -> str:
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise SystemExit("GOSBOT_DATABASE_URL must start with postgresql:// (leave it empty for the SQLite file)")
    return value


def log_format(value: str) -> str:
    if value.lower() not in ("text", "json"):
        raise SystemExit(f"GOSBOT_LOG_FORMAT must be text or json, got {value!r}")
    return value.lower()
