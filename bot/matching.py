"""Ranking FAQ entries and flows for a question, and deciding what to do with the ranking.

Every phrasing (and each entry's canonical question) is normalised once into lemmas. A question's
lemmas are expanded to the vocabulary with rapidfuzz (typos: "пороль" → "пароль"), then each
phrasing that shares a lemma is scored by IDF-weighted coverage in both directions: how much of the
phrasing the question covers (recall) and how much of the question the phrasing explains (precision).
An entry's score is its best phrasing's. Thresholds turn the ranking into one decision; a wrong
confident answer is worse than a question back, so the margin to the runner-up matters as much as
the score.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from bot import phones
from bot.knowledge import Knowledge
from bot.normalize import Normalized, Normalizer

# Calibrated on shared/eval/dev.tsv (see bench/quality.py); change them only with a measurement.
ANSWER_SCORE = 45.0
ANSWER_MARGIN = 3.0
CLARIFY_SCORE = 40.0
MAX_CLARIFY = 3
FUZZY_CUTOFF = 82.0  # for words of 4-6 letters; longer words tolerate more typos
FUZZY_CUTOFF_LONG = 75.0
RECALL_WEIGHT = 0.6
CANDIDATE_BUDGET = 1000  # phrasings scored per question at most (rarest words' postings first)
RANK_LIMIT = (
    40  # targets the decision looks at; enough for a runner-up of another topic  # score = recall^w * precision^(1-w)
)
_EMOJI = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D]")


@dataclass(frozen=True)
class Candidate:
    target_id: str
    kind: str  # "faq" | "flow"
    topic: str
    score: float
    label: str


@dataclass(frozen=True)
class Decision:
    """What the core will do with a question. `outcome` is one of OUTCOMES."""

    outcome: str
    target_id: str | None = None
    kind: str | None = None
    topic: str | None = None
    score: float = 0.0
    candidates: tuple[Candidate, ...] = ()
    smalltalk: str | None = None
    numbers: tuple[str, ...] = ()
    normalized: str = ""

    @property
    def faq_id(self) -> str | None:
        return self.target_id if self.kind == "faq" else None

    @property
    def flow_id(self) -> str | None:
        return self.target_id if self.kind == "flow" else None


OUT_OF_SCOPE = "out_of_scope"  # the target made of messages.yaml's out_of_scope questions
OUTCOMES = ("answer", "flow", "clarify", "fallback", "smalltalk", "contacts", "number_check")


@dataclass
class _Doc:
    target: int
    tokens: tuple[str, ...]
    weight: float = 0.0
    token_set: frozenset[str] = frozenset()


@dataclass
class _Target:
    id: str
    kind: str
    topic: str
    label: str


@dataclass
class Matcher:
    """Built once per knowledge version; `decide` is pure CPU work."""

    knowledge: Knowledge
    normalizer: Normalizer = field(init=False)
    targets: list[_Target] = field(init=False, default_factory=list)
    docs: list[_Doc] = field(init=False, default_factory=list)
    postings: dict[str, list[int]] = field(init=False, default_factory=dict)
    idf: dict[str, float] = field(init=False, default_factory=dict)
    smalltalk_words: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        k = self.knowledge
        self.normalizer = Normalizer(k.synonyms, k.filler)
        for entry in k.faq.values():
            self._add_target(entry.id, "faq", entry.topic, entry.question, (entry.question, *entry.phrasings))
        for flow in k.flows.values():
            self._add_target(flow.id, "flow", flow.topic, flow.title, flow.phrasings)
        # Always present (perhaps without phrasings) so the other-service rule has a target to name.
        self._add_target(OUT_OF_SCOPE, "oos", "other_out_of_scope", "", k.out_of_scope)
        self.oos_target = len(self.targets) - 1
        df: dict[str, set[int]] = defaultdict(set)
        postings: dict[str, list[int]] = defaultdict(list)
        for index, doc in enumerate(self.docs):
            for token in set(doc.tokens):
                df[token].add(doc.target)
                postings[token].append(index)
        n = max(len(self.targets), 1)
        self.idf = {t: math.log((n + 1) / (len(ts) + 0.5)) for t, ts in df.items()}
        self.unknown_idf = math.log((n + 1) / 0.5)
        self.postings = dict(postings)
        self.vocabulary = list(self.postings)
        for doc in self.docs:
            doc.token_set = frozenset(doc.tokens)
            doc.weight = sum(self.idf[t] for t in doc.token_set)
        # How many phrasings one question may score (see rank); the whole shipped FAQ fits.
        self.candidate_budget = CANDIDATE_BUDGET
        for intent in k.smalltalk:
            for phrasing in intent.phrasings:
                for word in self.normalizer(phrasing).words:
                    self.smalltalk_words.setdefault(word, intent.id)
        self._expansions: dict[str, tuple[tuple[str, float], ...]] = {}
        # Names of other services (вконтакте, вайлдберриз, webmoney): a message naming one is about
        # that service, however well the rest of it fits an entry. Words the FAQ itself uses don't count.
        in_scope = {t for doc in self.docs if self.targets[doc.target].kind != "oos" for t in doc.tokens}
        self.foreign = {t for name in k.other_services for t in self.normalizer(name).content if t not in in_scope}

    def _add_target(self, ident: str, kind: str, topic: str, label: str, phrasings: tuple[str, ...]) -> None:
        self.targets.append(_Target(ident, kind, topic, label))
        target = len(self.targets) - 1
        seen: set[tuple[str, ...]] = set()
        for phrasing in phrasings:
            tokens = self.normalizer(phrasing).content
            if tokens and tokens not in seen:
                seen.add(tokens)
                self.docs.append(_Doc(target, tokens))

    # -- ranking ---------------------------------------------------------------------------------

    def expand(self, token: str) -> tuple[tuple[str, float], ...]:
        """Vocabulary words a question word may stand for, with similarity 0..1."""
        cached = self._expansions.get(token)
        if cached is not None:
            return cached
        if token in self.postings:
            result: tuple[tuple[str, float], ...] = ((token, 1.0),)
        elif len(token) < 4:
            result = ()
        else:
            cutoff = FUZZY_CUTOFF_LONG if len(token) >= 7 else FUZZY_CUTOFF
            found = process.extract(token, self.vocabulary, scorer=fuzz.ratio, score_cutoff=cutoff, limit=3)
            result = tuple((word, score / 100.0) for word, score, _ in found)
        if len(self._expansions) < 100_000:
            self._expansions[token] = result
        return result

    def rank(
        self, tokens: tuple[str, ...], *, exclude_doc: int | None = None, limit: int | None = None
    ) -> list[Candidate]:
        """Targets by score (0..100), best first; `limit` keeps only the best few (the hot path)."""
        query = list(dict.fromkeys(tokens))
        if not query:
            return []
        # Each vocabulary word a question word may stand for, with the question words it serves.
        hits: dict[str, list[tuple[int, float]]] = {}
        query_idf: list[float] = []
        for index, q in enumerate(query):
            expansions = self.expand(q)
            query_idf.append(max((self.idf[w] for w, _ in expansions), default=self.unknown_idf))
            for word, similarity in expansions:
                hits.setdefault(word, []).append((index, similarity))
        if not hits:
            return []
        query_weight = sum(query_idf)
        # Candidates come from the rarest words first, until a budget of phrasings is reached: a word
        # in most phrasings ("не", "госуслуги") still counts in every score, but walking its postings
        # costs more than it can change at the top of the ranking.
        candidates: set[int] = set()
        for word in sorted(hits, key=lambda w: len(self.postings[w])):
            if candidates and len(candidates) + len(self.postings[word]) > self.candidate_budget:
                break
            candidates.update(self.postings[word])
        candidates.discard(exclude_doc)  # type: ignore[arg-type]
        gain = {w: self.idf[w] * max(sim for _, sim in served) for w, served in hits.items()}
        words = gain.keys()
        best: dict[int, float] = {}
        size = len(query)
        for doc_index in candidates:
            entry = self.docs[doc_index]
            shared = entry.token_set & words
            recall = sum(gain[t] for t in shared)
            per_query = [0.0] * size
            for token in shared:
                for index, similarity in hits[token]:
                    if similarity > per_query[index]:
                        per_query[index] = similarity
            precision = sum(w * s for w, s in zip(query_idf, per_query, strict=True))
            r_norm = min(recall / entry.weight, 1.0) if entry.weight else 0.0
            p_norm = min(precision / query_weight, 1.0)
            # Recall counts more: long stories explain more than any phrasing says.
            score = 100.0 * (r_norm**RECALL_WEIGHT) * (p_norm ** (1.0 - RECALL_WEIGHT))
            if score > best.get(entry.target, 0.0):
                best[entry.target] = score
        if limit is None:
            ranked = sorted(best.items(), key=lambda kv: -kv[1])
        else:
            ranked = heapq.nlargest(limit, best.items(), key=lambda kv: kv[1])
        return [
            Candidate(
                self.targets[t].id, self.targets[t].kind, self.targets[t].topic, round(s, 1), self.targets[t].label
            )
            for t, s in ranked
        ]

    # -- deciding --------------------------------------------------------------------------------

    def decide(self, text: str) -> Decision:
        """One decision for a free-text message (commands and buttons are the dialogue's business)."""
        numbers = tuple(phones.find_numbers(text))
        normalized = self.normalizer(text)
        if numbers and phones.asks_about_number(text, numbers, self.knowledge.official_numbers):
            return Decision(
                "number_check", topic="fraud_security", numbers=numbers, normalized=" ".join(normalized.content)
            )
        smalltalk = self._smalltalk(text, normalized)
        if smalltalk:
            return Decision("smalltalk", topic="greeting_smalltalk", smalltalk=smalltalk)
        content = tuple(w for w in normalized.content if w not in self.smalltalk_words or w == "не")
        return self.decide_tokens(content)

    def decide_tokens(self, content: tuple[str, ...]) -> Decision:
        return self.decide_ranked(self.rank(content, limit=RANK_LIMIT), content)

    def decide_ranked(self, candidates: list[Candidate], content: tuple[str, ...]) -> Decision:
        """Thresholds and margins over a ranking (the checker reuses this with one phrasing left out)."""
        in_scope = [c for c in candidates if c.kind != "oos"]
        top = tuple(in_scope[:MAX_CLARIFY])
        normalized = " ".join(content)
        if not candidates or candidates[0].score < CLARIFY_SCORE:
            return Decision(
                "fallback", score=candidates[0].score if candidates else 0.0, candidates=top, normalized=normalized
            )
        first = candidates[0]
        if first.kind != "oos" and any(t in self.foreign for t in content):
            oos = self.targets[self.oos_target]
            first = Candidate(oos.id, oos.kind, oos.topic, 0.0, oos.label)
        if first.kind == "oos":
            # Another service's question ("электронный дневник", "заказ на маркетплейсе"): say so.
            return Decision(
                "fallback", OUT_OF_SCOPE, "oos", "other_out_of_scope", first.score, top, normalized=normalized
            )
        rival = next((c for c in in_scope[1:] if c.topic != first.topic), None)
        margin = first.score - rival.score if rival else first.score
        if first.score >= ANSWER_SCORE and margin >= ANSWER_MARGIN:
            outcome = "flow" if first.kind == "flow" else "answer"
            return Decision(outcome, first.target_id, first.kind, first.topic, first.score, top, normalized=normalized)
        close = tuple(c for c in top if c.score >= CLARIFY_SCORE)
        return Decision("clarify", None, None, first.topic, first.score, close, normalized=normalized)

    def _smalltalk(self, text: str, normalized: Normalized) -> str | None:
        words = normalized.words
        if not words:
            emoji = _EMOJI.findall(text)
            if not emoji:
                return None
            for intent in self.knowledge.smalltalk:
                if any(e in p for p in intent.phrasings for e in emoji):
                    return intent.id
            return "hello"
        if "не" in words:
            return None
        intents = [self.smalltalk_words[w] for w in words if w in self.smalltalk_words]
        rest = [w for w in normalized.content if w not in self.smalltalk_words]
        if not intents or rest:
            return None
        # "ты бот" outranks "привет" in "привет, ты бот?": the last intent named is the point.
        return intents[-1]
