"""Deciding what a free-text message is about: a learned topic classifier and a lexical scorer.

Two stages. The classifier (`bot.classifier`, trained from the knowledge at start and on reload)
gives a probability for each topic, "out of scope" and "small talk" included. The lexical scorer
picks the FAQ entry or flow inside the topic and explains the match: every phrasing is normalised
once into lemmas, a question's lemmas are expanded to the vocabulary with rapidfuzz (typos:
"пороль" → "пароль"), and each phrasing that shares a lemma is scored by IDF-weighted coverage in
both directions. The bot answers only when the classifier is sure of the topic and the lexical
scorer does not point elsewhere; when two topics are close it asks "did you mean"; otherwise it
says it did not understand and offers a person. A wrong confident answer is the worst outcome.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from rapidfuzz import fuzz, process

from bot import classifier, fraud, phones
from bot.classifier import OUT_OF_SCOPE as OOS_TOPIC
from bot.classifier import SMALLTALK as SMALLTALK_TOPIC
from bot.classifier import Labelled, TopicModel
from bot.knowledge import Knowledge
from bot.normalize import Normalized, Normalizer, fold


@dataclass(frozen=True)
class Thresholds:
    """The decision rules' numbers, chosen by cross-validation (`python -m bench.tune`), never in-sample."""

    answer: float = 0.40  # the top topic's probability needed to answer
    margin: float = 0.30  # … and its lead over the second topic
    sure: float = 0.85  # sure enough to answer even when the lexical scorer prefers another topic
    clarify: float = 0.25  # a topic this likely is worth a "did you mean" button
    smalltalk: float = 0.50
    out_of_scope: float = 0.45
    lexical_strong: float = 60.0  # a lexical match this good for another topic is a disagreement


THRESHOLDS = Thresholds()
MAX_CLARIFY = 3
ACT_NOW = "told_code_to_scammer"  # the FAQ entry for a citizen who already gave a code away
# A message that speaks of a caller, a sender or trust is asking about the number it quotes.
_VERIFY = re.compile(
    r"(?i)\bзвон|\bпозвон|\bнабира|правда|официальн|настоящ|мошен|развод|это\s+госуслуг|с\s+номера|с\s+него|"
    r"с\s+этого|пришл\w*\s+с|прислал|пишут|написал|безопасн|чей\s+(?:это\s+)?номер|что\s+за\s+номер"
)
FUZZY_CUTOFF = 82.0  # for words of 4-6 letters; longer words tolerate more typos
FUZZY_CUTOFF_LONG = 75.0
RECALL_WEIGHT = 0.6  # score = recall^w * precision^(1-w)
CANDIDATE_BUDGET = 1000  # phrasings scored per question at most (rarest words' postings first)
RANK_LIMIT = 40  # targets the decision looks at; enough for a runner-up of another topic
_EMOJI = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D]")


class Candidate(NamedTuple):  # a tuple: the ranking makes dozens per question
    target_id: str
    kind: str  # "faq" | "flow"
    topic: str
    score: float
    label: str
    doc: int = -1  # the best phrasing (index into Matcher.docs)


@dataclass(frozen=True)
class Decision:
    """What the core will do with a question. `outcome` is one of OUTCOMES; `rule` says why."""

    outcome: str
    target_id: str | None = None
    kind: str | None = None
    topic: str | None = None
    score: float = 0.0
    candidates: tuple[Candidate, ...] = ()
    smalltalk: str | None = None
    numbers: tuple[str, ...] = ()
    normalized: str = ""
    rule: str = ""
    topics: tuple[tuple[str, float], ...] = ()  # the classifier's best topics with probabilities
    phrasing: str = ""  # the phrasing that matched the chosen entry best
    shared: tuple[str, ...] = ()  # the lemmas the message shares with it

    @property
    def faq_id(self) -> str | None:
        return self.target_id if self.kind == "faq" else None

    @property
    def flow_id(self) -> str | None:
        return self.target_id if self.kind == "flow" else None

    @property
    def probability(self) -> float:
        return self.topics[0][1] if self.topics else 0.0


OUT_OF_SCOPE = "out_of_scope"  # the target made of messages.yaml's out_of_scope questions
OUTCOMES = ("answer", "flow", "clarify", "fallback", "smalltalk", "contacts", "number_check")


@dataclass
class _Doc:
    target: int
    tokens: tuple[str, ...]
    text: str = ""
    weight: float = 0.0
    token_set: frozenset[str] = frozenset()


@dataclass
class _Target:
    id: str
    kind: str
    topic: str
    label: str


POSSIBLE = 0.01  # a topic the classifier gives less than this is not worth scoring lexically


def possible_topics(topics: list[tuple[str, float]]) -> set[str]:
    """The in-scope topics the classifier finds possible: the only ones the lexical scorer needs."""
    return {t for t, p in topics if p >= POSSIBLE and t not in (OOS_TOPIC, SMALLTALK_TOPIC)}


def _surface(text: str) -> str:
    return " ".join(re.findall(r"\w+|[^\w\s]", fold(text)))


def training_items(knowledge: Knowledge) -> list[Labelled]:
    """Everything the classifier learns from: phrasings, examples, out-of-scope and small talk."""
    items = [Labelled(t, e.topic) for e in knowledge.faq.values() for t in (e.question, *e.phrasings)]
    items += [Labelled(t, f.topic) for f in knowledge.flows.values() for t in (f.title, *f.phrasings)]
    items += [Labelled(e.text, e.topic) for e in knowledge.examples]
    items += [Labelled(t, OOS_TOPIC) for t in knowledge.out_of_scope]
    items += [Labelled(t, SMALLTALK_TOPIC) for i in knowledge.smalltalk for t in i.phrasings if not _EMOJI.search(t)]
    return items


@dataclass
class Matcher:
    """Built once per knowledge version (training included); `decide` is pure CPU work.

    `extra` adds labelled messages to the classifier's training set (cross-validation folds).
    """

    knowledge: Knowledge
    extra: tuple[Labelled, ...] = ()
    thresholds: Thresholds = THRESHOLDS
    c: float = classifier.REGULARISATION
    normalizer: Normalizer = field(init=False)
    model: TopicModel = field(init=False)
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
        self.doc_topics = [self.targets[doc.target].topic for doc in self.docs]
        for doc in self.docs:
            doc.token_set = frozenset(doc.tokens)
            doc.weight = math.fsum(self.idf[t] for t in doc.token_set)  # exact: the same in every process
        # How many phrasings one question may score (see rank); the whole shipped FAQ fits.
        self.candidate_budget = CANDIDATE_BUDGET
        # The same in arrays, for scoring many phrasings at once: which phrasing has which word
        # (phrasings × vocabulary, one column per word), each phrasing's target and weight.
        self._column = {word: index for index, word in enumerate(self.vocabulary)}
        self._has = np.zeros((len(self.docs), len(self.vocabulary)), dtype=np.float64, order="F")
        for index, doc in enumerate(self.docs):
            self._has[index, [self._column[t] for t in doc.token_set]] = 1.0
        self._postings = {word: np.asarray(p, dtype=np.intp) for word, p in self.postings.items()}
        self._topic_ids = {topic: index for index, topic in enumerate(dict.fromkeys(self.doc_topics))}
        self._doc_topic = np.asarray([self._topic_ids[t] for t in self.doc_topics], dtype=np.intp)
        self._doc_target = np.asarray([doc.target for doc in self.docs], dtype=np.intp)
        self._doc_weight = np.asarray([doc.weight for doc in self.docs], dtype=np.float64)
        self._intents_of: dict[str, set[str]] = defaultdict(set)  # a lemma's small-talk intents
        for intent in k.smalltalk:
            for phrasing in intent.phrasings:
                for word in self.normalizer(phrasing).words:
                    self.smalltalk_words.setdefault(word, intent.id)
                    self._intents_of[word].add(intent.id)
        self._expansions: dict[str, tuple[tuple[str, float], ...]] = {}
        # Names of other services (вконтакте, вайлдберриз, webmoney): a message naming one is about
        # that service, however well the rest of it fits an entry. Words the FAQ itself uses don't count.
        in_scope = {t for doc in self.docs if self.targets[doc.target].kind != "oos" for t in doc.tokens}
        self.foreign = {t for name in k.other_services for t in self.normalizer(name).content if t not in in_scope}
        # Small-talk examples by intent, for telling "спасибо" from "до свидания" once the classifier
        # has said "small talk".
        intents = {i.id for i in k.smalltalk}
        pairs = [(p, i.id) for i in k.smalltalk for p in i.phrasings]
        pairs += [(e.text, e.intent) for e in k.examples if e.intent in intents]
        self._smalltalk_texts = [_surface(t) for t, _ in pairs]
        self._smalltalk_intents = [i for _, i in pairs]
        self.model = classifier.train([*training_items(k), *self.extra], self.lemmas, c=self.c)
        self.by_topic: dict[str, list[int]] = defaultdict(list)
        for index, target in enumerate(self.targets):
            self.by_topic[target.topic].append(index)

    def lemmas(self, text: str) -> str:
        """What the classifier reads: every lemma of the text, filler words included."""
        return " ".join(self.normalizer(text).words)

    def _add_target(self, ident: str, kind: str, topic: str, label: str, phrasings: tuple[str, ...]) -> None:
        self.targets.append(_Target(ident, kind, topic, label))
        target = len(self.targets) - 1
        seen: set[tuple[str, ...]] = set()
        for phrasing in phrasings:
            tokens = self.normalizer(phrasing).content
            if tokens and tokens not in seen:
                seen.add(tokens)
                self.docs.append(_Doc(target, tokens, phrasing))

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
        self,
        tokens: tuple[str, ...],
        *,
        exclude_doc: int | None = None,
        limit: int | None = None,
        topics: Collection[str] | None = None,
    ) -> list[Candidate]:
        """Targets by score (0..100), best first; `limit` keeps only the best few (the hot path);
        `topics` scores only the phrasings of these topics (the ones the classifier finds possible)."""
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
        allowed = None
        if topics is not None:  # which phrasings are of these topics
            wanted = np.zeros(len(self._topic_ids), dtype=bool)
            wanted[[self._topic_ids[t] for t in topics if t in self._topic_ids]] = True
            allowed = wanted[self._doc_topic]
        candidates: set[int] = set()
        for word in sorted(hits, key=lambda w: len(self.postings[w])):
            postings = self._postings[word]
            if allowed is not None:
                postings = postings[allowed[postings]]
            if candidates and len(candidates) + len(postings) > self.candidate_budget:
                break
            candidates.update(postings.tolist())
        candidates.discard(exclude_doc)  # type: ignore[arg-type]
        if not candidates:
            return []
        # In the set's own order: of equal scores the first one seen wins, as it always has.
        docs = np.fromiter(candidates, dtype=np.intp, count=len(candidates))
        # Each candidate phrasing against each hit word: recall is the IDF weight of the words it
        # shares, precision the IDF weight of the question words it serves (at their similarity).
        words = list(hits)
        columns = np.fromiter((self._column[w] for w in words), dtype=np.intp, count=len(words))
        has = self._has[np.ix_(docs, columns)]
        gain = np.asarray([self.idf[w] * max(sim for _, sim in hits[w]) for w in words])
        recall = has @ gain
        # Precision, summed over the question's words in order: each at the best similarity of the
        # hit words serving it that the phrasing has.
        serving: list[list[tuple[int, float]]] = [[] for _ in query]
        for j, w in enumerate(words):
            for index, similarity in hits[w]:
                serving[index].append((j, similarity))
        precision = np.zeros(len(docs))
        for index, served in enumerate(serving):
            if not served:
                continue
            j, similarity = served[0]
            fit = has[:, j] * similarity
            for j, similarity in served[1:]:
                fit = np.maximum(fit, has[:, j] * similarity)
            precision += query_idf[index] * fit
        weight = self._doc_weight[docs]
        r_norm = np.minimum(np.divide(recall, weight, out=np.zeros_like(recall), where=weight > 0), 1.0)
        p_norm = np.minimum(precision / query_weight, 1.0)
        # Recall counts more: long stories explain more than any phrasing says.
        score = 100.0 * (r_norm**RECALL_WEIGHT) * (p_norm ** (1.0 - RECALL_WEIGHT))
        keep = score > 0.0
        seen = np.flatnonzero(keep)  # where each phrasing came in the candidates' order
        docs, score = docs[keep], score[keep]
        target = self._doc_target[docs]
        # Each target by its best phrasing (the first seen of equals), then targets best first (the
        # first seen of equals).
        order = np.lexsort((seen, -score, target))
        first = np.ones(len(order), dtype=bool)
        first[1:] = target[order][1:] != target[order][:-1]
        best = order[first]
        came = np.lexsort((seen, target))
        came = seen[came][first]  # aligned with `best`: both by target, one row per target
        ranked = best[np.lexsort((came, -score[best]))]
        if limit is not None:
            ranked = ranked[:limit]
        return [self._candidate(int(target[i]), float(score[i]), int(docs[i])) for i in ranked]

    def _candidate(self, target: int, score: float, doc: int = -1) -> Candidate:
        t = self.targets[target]
        return Candidate(t.id, t.kind, t.topic, round(score, 1), t.label, doc)

    # -- deciding --------------------------------------------------------------------------------

    def decide(self, text: str) -> Decision:
        """One decision for a free-text message (commands and buttons are the dialogue's business)."""
        normalized = self.normalizer(text)
        numbers = tuple(phones.find_numbers(fraud.without_own_numbers(text)))
        if fraud.gave_secret(text) and ACT_NOW in self.knowledge.faq:
            entry = self.knowledge.faq[ACT_NOW]
            return Decision(
                "answer",
                ACT_NOW,
                "faq",
                entry.topic,
                100.0,
                numbers=numbers,
                normalized=" ".join(normalized.content),
                rule="the citizen already gave a code or password away: act now, whatever number called",
            )
        smalltalk = self._smalltalk(text, normalized)
        content = tuple(w for w in normalized.content if w not in self.smalltalk_words or w == "не")
        if numbers and (not content or phones.asks_about_number(text, numbers, self.knowledge.official_numbers)):
            topics = self.model.predict(" ".join(normalized.words)) if content else []
            about = topics[0][0] if topics else "fraud_security"
            if not content or _VERIFY.search(text) or about in ("fraud_security", "phone_contacts"):
                return Decision(
                    "number_check",
                    topic="fraud_security",
                    numbers=numbers,
                    normalized=" ".join(normalized.content),
                    rule="the message asks about a phone number (a caller, a sender, or the number alone)",
                )
        if smalltalk:
            return Decision("smalltalk", topic=SMALLTALK_TOPIC, smalltalk=smalltalk, rule="only small-talk words")
        if not normalized.words:
            return Decision("fallback", rule="no words to go on")
        topics = self.model.predict(" ".join(normalized.words))
        if topics[0][0] == SMALLTALK_TOPIC and content:
            # "добрый день, у меня вопрос по пособию": the greeting outweighs one content word in the
            # whole message; what the content words alone are about decides.
            topics = self.model.predict(" ".join(content))
        return self.decide_with(text, topics, content, normalized)

    def decide_with(
        self,
        text: str,
        topics: list[tuple[str, float]],
        content: tuple[str, ...],
        normalized: Normalized,
        ranking: list[Candidate] | None = None,
    ) -> Decision:
        """The rules over the classifier's probabilities and the lexical ranking."""
        th = self.thresholds
        if ranking is None:
            ranking = self.rank(content, limit=RANK_LIMIT, topics=possible_topics(topics))
        shown = tuple((t, round(p, 3)) for t, p in topics[:3])
        joined = " ".join(content)
        first, p1 = topics[0]
        if first == SMALLTALK_TOPIC and p1 >= th.smalltalk:
            intent = self._smalltalk_intent(text)
            return Decision(
                "smalltalk",
                topic=SMALLTALK_TOPIC,
                smalltalk=intent,
                normalized=joined,
                rule=f"classifier: small talk ({p1:.0%})",
                topics=shown,
            )
        options = self._clarify_options(topics, ranking)
        foreign = sorted(t for t in content if t in self.foreign)
        if foreign or (first == OOS_TOPIC and p1 >= th.out_of_scope):
            why = f"names another service ({', '.join(foreign)})" if foreign else f"classifier: out of scope ({p1:.0%})"
            return Decision(
                "fallback", OUT_OF_SCOPE, "oos", OOS_TOPIC, 0.0, options, normalized=joined, rule=why, topics=shown
            )
        top, p_top = next((t, p) for t, p in topics if t not in (OOS_TOPIC, SMALLTALK_TOPIC))
        rival = max((p for t, p in topics if t != top), default=0.0)
        lexical = next((c for c in ranking if c.kind != "oos"), None)
        disagree = (
            lexical is not None and lexical.topic != top and lexical.score >= th.lexical_strong and p_top < th.sure
        )
        if p_top >= th.answer and p_top - rival >= th.margin and not disagree:
            chosen = self.best_in_topic(top, ranking, content)
            # Both must agree: with no word shared with any phrasing of the topic, the classifier
            # alone (character n-grams of unknown words) answers only when it is sure.
            if chosen is not None and (chosen.doc >= 0 or p_top >= th.sure):
                phrasing, shared = self._explain(chosen, content)
                return Decision(
                    "flow" if chosen.kind == "flow" else "answer",
                    chosen.target_id,
                    chosen.kind,
                    chosen.topic,
                    chosen.score,
                    tuple(c for c in ranking if c.kind != "oos")[:MAX_CLARIFY],
                    normalized=joined,
                    rule=f"classifier: {top} ({p_top:.0%}, lead {p_top - rival:.0%}); the topic's best lexical match",
                    topics=shown,
                    phrasing=phrasing,
                    shared=shared,
                )
        if options and (p_top >= th.clarify or disagree):
            if disagree and lexical is not None:
                why = f"classifier says {top} ({p_top:.0%}), the words fit {lexical.topic} ({lexical.score:.0f})"
            else:
                why = f"no topic sure enough: {top} {p_top:.0%}, runner-up {rival:.0%}"
            return Decision("clarify", None, None, top, p_top * 100, options, normalized=joined, rule=why, topics=shown)
        why = f"no topic likely enough ({top} {p_top:.0%})"
        return Decision("fallback", None, None, None, p_top * 100, options, normalized=joined, rule=why, topics=shown)

    def best_in_topic(self, topic: str, ranking: list[Candidate], content: tuple[str, ...]) -> Candidate | None:
        """The entry or flow of `topic` the lexical scorer likes best; a topic's flow when none matches."""
        for candidate in ranking:
            if candidate.topic == topic and candidate.kind != "oos":
                return candidate
        inside = [i for i in self.by_topic.get(topic, ()) if self.targets[i].kind != "oos"]
        if not inside:
            return None
        # Nothing shared a word: the topic's guided flow (it asks what exactly happened), else its
        # entry nearest in spelling.
        flows = [i for i in inside if self.targets[i].kind == "flow"]
        if flows:
            return self._candidate(flows[0], 0.0)
        query = " ".join(content)
        best = max(inside, key=lambda i: fuzz.token_set_ratio(query, self.targets[i].label.lower()))
        return self._candidate(best, 0.0)

    def _clarify_options(self, topics: list[tuple[str, float]], ranking: list[Candidate]) -> tuple[Candidate, ...]:
        """The best entry of each likely in-scope topic, most likely first (the "did you mean" buttons)."""
        options: list[Candidate] = []
        for topic, p in topics:
            if len(options) >= MAX_CLARIFY or p < self.thresholds.clarify / 2:
                break
            if topic in (OOS_TOPIC, SMALLTALK_TOPIC):
                continue
            chosen = self.best_in_topic(topic, ranking, ())
            if chosen is not None:
                options.append(chosen)
        return tuple(options)

    def _explain(self, candidate: Candidate, content: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        if candidate.doc < 0:
            return "", ()
        doc = self.docs[candidate.doc]
        expanded = {w for q in content for w, _ in self.expand(q)}
        return doc.text, tuple(t for t in doc.tokens if t in expanded)

    def _smalltalk_intent(self, text: str) -> str:
        """The intent of the small-talk example nearest in spelling ("помогло" is thanks, "помогите" a plea)."""
        found = process.extractOne(_surface(text), self._smalltalk_texts, scorer=fuzz.WRatio)
        return self._smalltalk_intents[found[2]] if found else "hello"

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
        # "ты бот" outranks "привет" in "привет, ты бот?": the last intent named is the point, unless
        # its word belongs to several intents (помогло / помогите): then the nearest example decides.
        last = next(w for w in reversed(words) if w in self.smalltalk_words)
        if len(self._intents_of.get(last, ())) > 1:
            return self._smalltalk_intent(text)
        return intents[-1]
