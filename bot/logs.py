"""Log set-up for `gosbot run`: plain text, or one JSON object per line (GOSBOT_LOG_FORMAT=json).

Log lines never carry what citizens wrote (the code logs ids and outcomes, not texts); as a second
guard, anything shaped like a bot token or an access_token parameter is masked before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import time

_SECRETS = (
    re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{30,}"),  # Telegram bot token (also inside /bot<token>/)
    re.compile(r"(access_token=)[^&'\"\s,)]+"),  # VK token in a URL
    re.compile(r"\bvk1\.a\.[A-Za-z0-9_.-]+"),  # VK community token
)


def mask_secrets(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
