"""The core stays platform-neutral: nothing under bot/ imports a platform library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from scenario import ROOT

PLATFORM_LIBRARIES = frozenset({"aiogram", "vk_api"})


def platform_imports(path: Path) -> list[str]:
    """`file:line: module` for every import of a platform library in a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            if module.split(".", 1)[0] in PLATFORM_LIBRARIES:
                found.append(f"{path.name}:{node.lineno}: {module}")
    return found


def test_core_does_not_import_platform_libraries():
    files = sorted((ROOT / "bot").rglob("*.py"))
    assert len(files) > 10  # the walk really found the core
    leaks = [leak for path in files for leak in platform_imports(path)]
    assert leaks == []


@pytest.mark.parametrize(
    "source",
    [
        "import aiogram\n",
        "import os, vk_api\n",
        "from aiogram.types import Message\n",
        "from vk_api.bot_longpoll import VkBotLongPoll\n",
        "def later():\n    import aiogram.client.bot as b\n    return b\n",
        "try:\n    from aiogram import Bot\nexcept ImportError:\n    Bot = None\n",
    ],
)
def test_the_checker_catches_a_platform_import(tmp_path, source):
    leaky = tmp_path / "leaky.py"
    leaky.write_text(source, encoding="utf-8")
    assert len(platform_imports(leaky)) == 1


def test_the_checker_ignores_look_alikes(tmp_path):
    clean = tmp_path / "clean.py"
    clean.write_text(
        "import aiogramish\nfrom .aiogram import x\nfrom bot.messages import Reply\ntext = 'import aiogram'\n",
        encoding="utf-8",
    )
    assert platform_imports(clean) == []
