"""Russian text → the lemmas the matcher compares.

Citizens type in the wrong keyboard layout ("ytn rjlf"), in transliteration ("kod ne prihodit"),
with ё or without, in CAPS, with emoji. Every text — citizens' and the editors' phrasings alike —
goes through the same steps: Unicode and case folding, ё→е, layout or transliteration repair for
Latin words, tokenising, pymorphy3 lemmas, the editors' synonym table, and dropping filler words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import pymorphy3

_EN = "qwertyuiop[]asdfghjkl;'zxcvbnm,.`{}:\"<>~&"
_RU = "йцукенгшщзхъфывапролджэячсмитьбюёхъжэбюё?"
_EN_TO_RU = str.maketrans(_EN, _RU)
_RU_TO_EN = str.maketrans(_RU, _EN)

# Longest first: multi-letter transliterations must win over their single letters.
_TRANSLIT = sorted(
    {
        "shch": "щ",
        "sch": "щ",
        "zh": "ж",
        "kh": "х",
        "ch": "ч",
        "sh": "ш",
        "ts": "ц",
        "tz": "ц",
        "yu": "ю",
        "ya": "я",
        "yo": "е",
        "ye": "е",
        "ju": "ю",
        "ja": "я",
        "jo": "е",
        "iu": "ю",
        "ia": "я",
        "ck": "к",
        "ph": "ф",
        "yi": "ый",
        "iy": "ий",
        "yy": "ый",
        "a": "а",
        "b": "б",
        "c": "ц",
        "d": "д",
        "e": "е",
        "f": "ф",
        "g": "г",
        "h": "х",
        "i": "и",
        "j": "й",
        "k": "к",
        "l": "л",
        "m": "м",
        "n": "н",
        "o": "о",
        "p": "п",
        "q": "к",
        "r": "р",
        "s": "с",
        "t": "т",
        "u": "у",
        "v": "в",
        "w": "в",
        "x": "кс",
        "y": "ы",
        "z": "з",
        "'": "ь",
        "4": "ч",
        "6": "ш",
    }.items(),
    key=lambda kv: -len(kv[0]),
)
_TRANSLIT_RE = re.compile("|".join(re.escape(k) for k, _ in _TRANSLIT))
_TRANSLIT_MAP = dict(_TRANSLIT)

_LATIN_CHUNK = re.compile(r"^[a-z0-9;'\[\],.`{}:\"<>~&]*[a-z][a-z0-9;'\[\],.`{}:\"<>~&]*$")
_TOKEN = re.compile(r"[а-я]+|[a-z0-9']*[a-z][a-z0-9']*")
_EDGE_PUNCT = '!?"«»()…:-—–*'


@lru_cache(maxsize=1)
def morph() -> pymorphy3.MorphAnalyzer:
    """The analyser loads its dictionaries once (about a second), on first use, not at import."""
    return pymorphy3.MorphAnalyzer()


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    if not word or not ("а" <= word[0] <= "я"):
        return word
    return morph().parse(word)[0].normal_form.replace("ё", "е")


@lru_cache(maxsize=200_000)
def is_known(word: str) -> bool:
    return len(word) > 1 and morph().word_is_known(word)


MAX_WORD = 30  # longer tokens are not words: they are kept as they are and cut for lemmatising
_VOWEL_SWAPS = {"а": "о", "о": "а", "е": "и", "и": "е", "я": "е", "ы": "и", "ю": "у", "э": "е"}
_CONSONANTS = set("бвгджзклмнпрстфхцчшщ")


@lru_cache(maxsize=50_000)
def spell_fix(word: str) -> str:
    """A dictionary word for a misspelt one, trying the typical mistakes of fast phone typing.

    Unstressed vowels (заблакирован, атклонили), a lost or extra double consonant (акаунт), one
    extra letter (ужастный). Only known words are returned; otherwise the word is kept as it is and
    the matcher's fuzzy expansion gets its chance.
    """
    # Real words are short; a 4,000-letter "word" must not cost quadratic work on the event loop.
    if not 4 <= len(word) <= MAX_WORD or is_known(word) or not ("а" <= word[0] <= "я"):
        return word
    candidates: list[str] = []
    vowels = [i for i, ch in enumerate(word) if ch in _VOWEL_SWAPS]
    for i in vowels:
        candidates.append(word[:i] + _VOWEL_SWAPS[word[i]] + word[i + 1 :])
    for i, ch in enumerate(word):
        if ch in _CONSONANTS:
            if i + 1 < len(word) and word[i + 1] == ch:
                candidates.append(word[:i] + word[i + 1 :])
            else:
                candidates.append(word[: i + 1] + ch + word[i + 1 :])
    for i in range(1, len(word)):
        candidates.append(word[:i] + word[i + 1 :])
    for a in range(len(vowels)):
        for b in range(a + 1, len(vowels)):
            i, j = vowels[a], vowels[b]
            candidates.append(
                word[:i] + _VOWEL_SWAPS[word[i]] + word[i + 1 : j] + _VOWEL_SWAPS[word[j]] + word[j + 1 :]
            )
    for candidate in candidates:
        if is_known(candidate):
            return candidate
    return word


def transliterate(word: str) -> str:
    out = _TRANSLIT_RE.sub(lambda m: _TRANSLIT_MAP[m.group()], word)
    # "kod" → "код", but "y" at the end after a vowel is "й" (moy → мой).
    return re.sub(r"([аеиоуыэюя])ы\b", r"\1й", out).replace("'", "ь")


@lru_cache(maxsize=50_000)
def from_translit(word: str) -> str:
    """The likeliest Russian word for a transliterated one: try the usual ambiguities, keep a known one."""
    base = transliterate(word)
    candidates = [base]
    if "ц" in base:
        candidates.append(base.replace("ц", "тс"))  # otkryvaetsya → открываетсЯ, not открываецЯ
    for candidate in list(candidates):
        candidates.append(candidate + "ь")  # delat → делать
        if "ы" in candidate:
            candidates.append(candidate.replace("ы", "й"))
    for candidate in candidates:
        if is_known(candidate):
            return candidate
    return base


def fold(text: str) -> str:
    """Unicode, case and ё folding."""
    return unicodedata.normalize("NFKC", text).lower().replace("ё", "е")


@dataclass(frozen=True)
class Normalized:
    """`words`: every lemma in order; `content`: without filler words (what the matcher ranks)."""

    words: tuple[str, ...]
    content: tuple[str, ...]


class Normalizer:
    """Text → lemmas. Built from the editors' synonyms and filler words."""

    def __init__(self, synonyms: dict[str, tuple[str, ...]], filler: tuple[str, ...]):
        # Latin words that stay Latin (sms, esia, pdf …): the synonym table names them.
        variants = {v for vs in synonyms.values() for v in vs} | set(synonyms)
        self.latin = {v for v in variants if re.fullmatch(r"[a-z]+", v)}
        self.phrases: dict[tuple[str, ...], str] = {}
        for canonical, vs in synonyms.items():
            target = " ".join(self._lemmas(canonical)) or canonical
            for variant in (canonical, *vs):
                key = tuple(self._lemmas(variant))
                if key and key != (target,):
                    self.phrases[key] = target
        self.longest = max((len(k) for k in self.phrases), default=1)
        self.filler = {w for phrase in filler for w in self._lemmas(phrase)}

    def __call__(self, text: str) -> Normalized:
        words = tuple(self._synonyms(self._lemmas(text)))
        return Normalized(words, tuple(w for w in words if w not in self.filler))

    def _lemmas(self, text: str) -> list[str]:
        chunks = fold(text).split()
        chunks = self._repair_latin(chunks)
        result: list[str] = []
        for chunk in chunks:
            for token in _TOKEN.findall(chunk):
                token = token[: MAX_WORD * 2]
                if token not in self.latin and not ("а" <= token[0] <= "я"):
                    token = from_translit(token)
                elif "а" <= token[0] <= "я" and not is_known(token):
                    # Latin typed on a Russian layout: "ыьы" is "sms".
                    latin = token.translate(_RU_TO_EN)
                    token = latin if latin in self.latin else spell_fix(token)
                result.append(lemma(token))
        return result

    def _repair_latin(self, chunks: list[str]) -> list[str]:
        """Latin chunks were typed either in the wrong layout or in transliteration: pick per message."""
        latin = [
            i
            for i, c in enumerate(chunks)
            if _LATIN_CHUNK.match(c.strip(_EDGE_PUNCT)) and c.strip(_EDGE_PUNCT) not in self.latin
        ]
        if not latin:
            return chunks
        layout_known = translit_known = 0
        for i in latin:
            chunk = chunks[i].strip(_EDGE_PUNCT)
            layout_words = _TOKEN.findall(chunk.rstrip(",.").translate(_EN_TO_RU))
            translit_words = _TOKEN.findall(transliterate(re.sub(r"[^a-z0-9']", " ", chunk)))
            layout_known += sum(is_known(w) for w in layout_words)
            translit_known += sum(is_known(w) for w in translit_words)
        if layout_known <= translit_known:
            return chunks  # transliteration is handled token by token
        out = list(chunks)
        for i in latin:
            chunk = chunks[i].strip(_EDGE_PUNCT)
            # A trailing comma or full stop is punctuation more often than б / ю.
            core = chunk.rstrip(",.") if len(chunk.rstrip(",.")) > 1 else chunk
            out[i] = core.translate(_EN_TO_RU)
        return out

    def _synonyms(self, words: list[str]) -> list[str]:
        if not self.phrases:
            return words
        out: list[str] = []
        i = 0
        while i < len(words):
            for size in range(min(self.longest, len(words) - i), 0, -1):
                key = tuple(words[i : i + size])
                if key in self.phrases:
                    out.extend(self.phrases[key].split())
                    i += size
                    break
            else:
                out.append(words[i])
                i += 1
        return out
