"""Which topic a message is about, learned from the knowledge: a calibrated linear classifier.

Training material, all from `knowledge/`: every FAQ question and phrasing and every flow phrasing
(labelled with its topic), the per-topic examples in `knowledge/examples/`, the out-of-scope and
small-talk examples, plus noisy copies of all of them (`bot.noise`: wrong layout, transliteration,
phonetic spelling, typos). Features are TF-IDF word uni- and bigrams and character n-grams of the
normalised lemmas, so "ни магу зайти" and "не могу войти" land close. A multinomial logistic
regression gives a probability for each of the 18 topics, out of scope and small talk included.

Training is deterministic (fixed seed, sorted input) and takes a few seconds at the shipped size;
the result is cached in memory by the content of the training set, so rebuilding a matcher for the
same knowledge (tests, a reload that changed only a bot message) costs nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from bot import noise

SEED = 20261203
NOISY_COPIES = 1  # noisy variants generated per training text (2 costs twice the training time, no gain in CV)
REGULARISATION = 30.0  # LogisticRegression C, chosen by cross-validation (python -m bench.tune --c 2,8,30)
WORD_CACHE = 50_000  # words whose character n-grams a model keeps (a few MB at most)
OUT_OF_SCOPE = "other_out_of_scope"
SMALLTALK = "greeting_smalltalk"
_CACHE_SIZE = 4


@dataclass(frozen=True)
class Labelled:
    text: str
    topic: str


class TopicModel:
    """A trained classifier: `predict(lemmas)` → (topic, probability) pairs, most likely first.

    One message at a time (the hot path) is scored without scikit-learn's per-call validation, which
    costs more than the arithmetic: the fitted vocabularies, IDF weights and coefficients are read
    once into plain dicts and arrays, and `predict` repeats exactly what `predict_many` (the
    library's own `predict_proba`) computes — a test holds the two equal.
    """

    def __init__(self, words: TfidfVectorizer, chars: TfidfVectorizer, model: LogisticRegression):
        self.words = words
        self.chars = chars
        self.model = model
        self.classes: tuple[str, ...] = tuple(str(c) for c in model.classes_)
        self._blocks = []
        offset = 0
        for vectorizer in (words, chars):
            vocabulary = {term: offset + int(i) for term, i in vectorizer.vocabulary_.items()}
            idf = np.zeros(offset + len(vectorizer.idf_), dtype=np.float64)
            idf[offset:] = vectorizer.idf_
            self._blocks.append((vectorizer.build_analyzer(), vocabulary, idf))
            offset += len(vectorizer.idf_)
        # The character n-grams of a text are those of its words (char_wb never crosses a space), so
        # each word's are counted once and kept: word -> {feature: count}, in order of appearance.
        self._word_grams: dict[str, dict[int, int]] = {}
        self._coef = np.ascontiguousarray(model.coef_.T, dtype=np.float64)  # features × classes
        self._intercept = np.asarray(model.intercept_, dtype=np.float64)

    def features(self, texts: Sequence[str]):  # type: ignore[no-untyped-def]
        return hstack([self.words.transform(texts), self.chars.transform(texts)]).tocsr()

    def predict(self, lemmas: str) -> list[tuple[str, float]]:
        scores = self._intercept.copy()
        for block, (analyzer, vocabulary, idf) in enumerate(self._blocks):
            counts = self._char_counts(lemmas) if block == 1 else _counts(analyzer(lemmas), vocabulary)
            if not counts:
                continue
            indexes = np.fromiter(counts, dtype=np.intp, count=len(counts))
            values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * idf[indexes]
            values /= np.sqrt(values @ values)
            scores += values @ self._coef[indexes]
        scores -= scores.max()
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum()
        order = np.argsort(-probabilities, kind="stable")
        return [(self.classes[i], float(probabilities[i])) for i in order]

    def _char_counts(self, lemmas: str) -> dict[int, int]:
        """The character block's counts, word by word: the same features in the same order as
        the analyzer over the whole text gives."""
        analyzer, vocabulary, _ = self._blocks[1]
        counts: dict[int, int] = {}
        for word in lemmas.split():
            grams = self._word_grams.get(word)
            if grams is None:
                grams = _counts(analyzer(word), vocabulary)
                if len(self._word_grams) < WORD_CACHE:
                    self._word_grams[word] = grams
            for index, n in grams.items():
                counts[index] = counts.get(index, 0) + n
        return counts

    def predict_many(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        matrix = self.model.predict_proba(self.features(list(texts)))
        result = []
        for row in matrix:
            order = np.argsort(-row, kind="stable")
            result.append([(self.classes[i], float(row[i])) for i in order])
        return result


def _counts(terms: Iterable[str], vocabulary: dict[str, int]) -> dict[int, int]:
    """Known terms' counts, in order of first appearance."""
    counts: dict[int, int] = {}
    for term in terms:
        index = vocabulary.get(term)
        if index is not None:
            counts[index] = counts.get(index, 0) + 1
    return counts


def augmented(items: Iterable[Labelled], copies: int = NOISY_COPIES, seed: int = SEED) -> list[Labelled]:
    """The items and their noisy copies, in a deterministic order."""
    out: list[Labelled] = []
    for item in items:
        out.append(item)
        out.extend(Labelled(v, item.topic) for v in noise.variants(item.text, copies, seed))
    return out


def fit(texts: Sequence[str], topics: Sequence[str], *, c: float = REGULARISATION, seed: int = SEED) -> TopicModel:
    """Train on normalised texts (space-joined lemmas) and their topics."""
    words = TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+", dtype=np.float32
    )
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, dtype=np.float32)
    matrix = hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
    model = LogisticRegression(C=c, solver="newton-cg", max_iter=300, random_state=seed)
    model.fit(matrix, list(topics))
    return TopicModel(words, chars, model)


_cache: OrderedDict[str, TopicModel] = OrderedDict()
_cache_lock = threading.Lock()


def train(items: Sequence[Labelled], normalize: Callable[[str], str], *, c: float = REGULARISATION) -> TopicModel:
    """Augment, normalise and fit; the same training set (and settings) gives the cached model."""
    ordered = sorted({(i.text, i.topic) for i in items})
    key = hashlib.sha256(
        f"{SEED}|{NOISY_COPIES}|{c}|".encode() + "\n".join(f"{t}\t{p}" for t, p in ordered).encode()
    ).hexdigest()
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    rows = augmented(Labelled(t, p) for t, p in ordered)
    texts, topics = [], []
    for row in rows:
        lemmas = normalize(row.text)
        if lemmas:
            texts.append(lemmas)
            topics.append(row.topic)
    model = fit(texts, topics, c=c)
    with _cache_lock:
        _cache[key] = model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return model
