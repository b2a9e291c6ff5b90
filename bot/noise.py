"""Noisy copies of training texts, generated the way citizens mistype on a phone.

Editors write examples cleanly; citizens type in the wrong keyboard layout, in transliteration, with
phonetic spelling ("ни магу зайти", "спасиба"), dropped and doubled letters, in CAPS, without
punctuation. The classifier learns from both: every training text gets a few variants made here.
Generation is deterministic: the same text, seed and variant number always give the same copy.
"""

from __future__ import annotations

import hashlib
import random
import re

_RU = "йцукенгшщзхъфывапролджэячсмитьбю"
_EN = "qwertyuiop[]asdfghjkl;'zxcvbnm,."
_TO_LAYOUT = str.maketrans(_RU + _RU.upper(), _EN + _EN.upper())

_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya",
}  # fmt: skip

# Spellings of fast, phonetic typing: unstressed vowels, -тся/-ться, common chat forms.
_PHONETIC_WORDS = {
    "что": "што", "чтобы": "штобы", "сейчас": "щас", "спасибо": "спасиба", "пожалуйста": "пожалуста",
    "здравствуйте": "здраствуйте", "не": "ни", "могу": "магу", "почему": "пачему", "его": "ево",
    "сегодня": "седня", "вообще": "ваще", "тоже": "тожи", "только": "тока", "конечно": "канешно",
    "телефон": "тилифон", "госуслуги": "гасуслуги", "когда": "кагда", "хорошо": "харашо",
}  # fmt: skip
_VOWEL_SWAP = {"о": "а", "а": "о", "е": "и", "и": "е", "я": "е"}
_SUFFIXES = ((r"ться\b", "ца"), (r"тся\b", "ца"), (r"ого\b", "ова"), (r"его\b", "ево"))
_WORD = re.compile(r"[а-яё]+", re.IGNORECASE)
_PUNCT = re.compile(r"[.,!?;:«»\"()]")


def _rng(text: str, seed: int, variant: int) -> random.Random:
    digest = hashlib.blake2b(f"{seed}\0{variant}\0{text}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def wrong_layout(text: str) -> str:
    """Russian typed with the English layout on: "не приходит" → "yt ghb[jlbn"."""
    return text.translate(_TO_LAYOUT)


def transliterate(text: str) -> str:
    """Russian written in Latin letters: "не приходит код" → "ne prihodit kod"."""
    out = []
    for ch in text:
        low = ch.lower()
        latin = _TRANSLIT.get(low)
        out.append(ch if latin is None else (latin.capitalize() if ch != low else latin))
    return "".join(out)


def phonetic(text: str, rng: random.Random) -> str:
    """Spelling by ear: chat forms, -ца for -тся, one swapped unstressed-looking vowel per long word."""

    def word(match: re.Match[str]) -> str:
        w = match.group()
        low = w.lower()
        if low in _PHONETIC_WORDS and rng.random() < 0.7:
            return _PHONETIC_WORDS[low]
        for pattern, repl in _SUFFIXES:
            if re.search(pattern, low) and rng.random() < 0.6:
                return re.sub(pattern, repl, low)
        if len(low) >= 5 and rng.random() < 0.5:
            positions = [i for i, ch in enumerate(low[1:-1], 1) if ch in _VOWEL_SWAP]
            if positions:
                i = rng.choice(positions)
                return low[:i] + _VOWEL_SWAP[low[i]] + low[i + 1 :]
        return w

    return _WORD.sub(word, text)


def typos(text: str, rng: random.Random) -> str:
    """Slips of the thumb: a dropped, doubled or swapped letter in a few words."""
    words = text.split(" ")
    for index, w in enumerate(words):
        if len(w) < 4 or rng.random() > 0.35:
            continue
        i = rng.randrange(1, len(w) - 1)
        kind = rng.randrange(3)
        if kind == 0:
            w = w[:i] + w[i + 1 :]
        elif kind == 1:
            w = w[:i] + w[i] + w[i:]
        else:
            w = w[: i - 1] + w[i] + w[i - 1] + w[i + 1 :]
        words[index] = w
    return " ".join(words)


def variants(text: str, count: int, seed: int = 0) -> list[str]:
    """`count` noisy copies of `text` (fewer when they come out the same as the text or each other)."""
    out: list[str] = []
    for n in range(count):
        rng = _rng(text, seed, n)
        noisy = _PUNCT.sub("", text) if rng.random() < 0.7 else text
        noisy = noisy.lower() if rng.random() < 0.7 else noisy
        roll = rng.random()
        if roll < 0.45:
            noisy = phonetic(noisy, rng)
        elif roll < 0.75:
            noisy = typos(noisy, rng)
        else:
            noisy = typos(phonetic(noisy, rng), rng)
        script = rng.random()
        if script < 0.1:
            noisy = wrong_layout(noisy)
        elif script < 0.2:
            noisy = transliterate(noisy)
        elif script < 0.3:
            noisy = noisy.upper()
        if noisy != text and noisy not in out:
            out.append(noisy)
    return out
