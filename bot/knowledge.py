"""Knowledge as validated data: load `knowledge/*.yaml` into types, with every problem as file:line.

Loading never exits and never stops at the first problem: it collects them all and raises one
`KnowledgeError`. Texts are rendered here (placeholders resolved from contacts.yaml), so the rest of
the core only ever sees text that passed validation.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import phones
from bot.yamlpos import PosList, PosMap, Problem, load

FILES = ("contacts.yaml", "topics.yaml", "faq.yaml", "flows.yaml", "synonyms.yaml", "messages.yaml")
EXAMPLES_DIR = "examples"  # knowledge/examples/<topic>.yaml: training examples for the topic classifier
ID_RE = re.compile(r"^[a-z0-9_]{1,30}$")
MAX_ANSWER = 700
MIN_PHRASINGS = 6
CONTACT_KINDS = {"phone", "short_number", "site", "url", "sms_sender", "email", "messenger", "note"}
PRIORITIES = ("urgent", "normal")

# Bot texts every deployment needs, and the run-time values each may use besides contacts.
MESSAGE_KEYS: dict[str, frozenset[str]] = {
    "welcome": frozenset(),
    "help": frozenset(),
    "phone": frozenset(),
    "fallback": frozenset(),
    "out_of_scope": frozenset(),
    "clarify": frozenset(),
    "empty": frozenset(),
    "non_text": frozenset(),
    "long_text": frozenset({"limit"}),
    "number_official": frozenset({"number"}),
    "number_sms_sender": frozenset({"number"}),
    "number_not_official": frozenset({"number"}),
    "sensitive_warning": frozenset(),
    "sensitive_data_warning": frozenset({"what"}),
    "unknown_button": frozenset(),
    "flow_leave_confirm": frozenset({"title"}),
    "flow_helped": frozenset(),
    "ticket_opened": frozenset({"ticket", "answer_time"}),
    "ticket_open_already": frozenset({"ticket"}),
    "ticket_limit": frozenset(),
    "ticket_cooldown": frozenset(),
    "ticket_added": frozenset({"ticket"}),
    "ticket_cancelled": frozenset({"ticket"}),
    "ticket_none": frozenset(),
    "ticket_taken": frozenset({"ticket"}),
    "operator_reply": frozenset({"ticket", "text"}),
    "ticket_closed": frozenset({"ticket"}),
    "rating_thanks": frozenset(),
    "cancel_nothing": frozenset(),
    "technical_problem": frozenset(),
    "btn_operator": frozenset(),
    "btn_phone": frozenset(),
    "btn_back": frozenset(),
    "btn_home": frozenset(),
    "btn_helped": frozenset(),
    "btn_not_helped": frozenset(),
    "btn_leave_flow": frozenset(),
    "btn_stay_flow": frozenset(),
    "btn_cancel_ticket": frozenset(),
}


class KnowledgeError(Exception):
    """Every problem found, in file and line order."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Contact:
    id: str
    label: str
    value: str
    kind: str
    note: str
    source: str
    verified_on: str
    verified: bool


@dataclass(frozen=True)
class Topic:
    id: str
    title: str
    priority: str


@dataclass(frozen=True)
class AnswerTime:
    minutes: int
    text: str


@dataclass(frozen=True)
class FaqEntry:
    id: str
    topic: str
    question: str
    phrasings: tuple[str, ...]
    answer: str
    related: tuple[str, ...] = ()
    file: str = "faq.yaml"
    line: int = 0
    phrasing_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class FlowOption:
    label: str
    goto: str | None = None
    flow: str | None = None
    handoff: bool = False


@dataclass(frozen=True)
class FlowStep:
    id: str
    text: str
    options: tuple[FlowOption, ...] = ()
    end: bool = False


@dataclass(frozen=True)
class Flow:
    id: str
    topic: str
    title: str
    phrasings: tuple[str, ...]
    start: str
    steps: dict[str, FlowStep]
    file: str = "flows.yaml"
    line: int = 0
    phrasing_lines: tuple[int, ...] = ()

    @property
    def question(self) -> str:
        return self.title


@dataclass(frozen=True)
class Example:
    """A citizen's message as written about a topic (training material, never shown)."""

    text: str
    topic: str
    intent: str = ""  # small talk only: which intent's reply it wants
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class SmalltalkIntent:
    id: str
    phrasings: tuple[str, ...]
    reply: str


@dataclass(frozen=True)
class Knowledge:
    contacts: dict[str, Contact]
    topics: dict[str, Topic]
    answer_time: dict[str, AnswerTime]
    faq: dict[str, FaqEntry]
    flows: dict[str, Flow]
    synonyms: dict[str, tuple[str, ...]]
    messages: dict[str, str]
    smalltalk: tuple[SmalltalkIntent, ...]
    filler: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()  # questions about other services: answered "not here"
    other_services: tuple[str, ...] = ()  # names that mark a message as about another service
    examples: tuple[Example, ...] = ()  # knowledge/examples/*.yaml
    version: str = ""
    official_numbers: dict[str, Contact] = field(default_factory=dict)

    def text(self, key: str, **values: str) -> str:
        """A bot message with its run-time values filled in."""
        template = self.messages[key]
        return _fill_runtime(template, values) if values else template

    def target(self, target_id: str) -> FaqEntry | Flow | None:
        return self.faq.get(target_id) or self.flows.get(target_id)


def _fill_runtime(template: str, values: dict[str, str]) -> str:
    # Plain replacement, not str.format: a value may itself contain braces (user text).
    out = template
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    return out


# ---------------------------------------------------------------------------------------------
# loading


def knowledge_files(directory: Path) -> list[str]:
    """The names of the knowledge files (present or not) relative to `directory`."""
    names = list(FILES)
    examples = directory / EXAMPLES_DIR
    if examples.is_dir():
        names.extend(f"{EXAMPLES_DIR}/{p.name}" for p in sorted(examples.glob("*.yaml")))
    return names


def read_texts(directory: Path) -> dict[str, str]:
    """The knowledge files present in `directory`, by name; a file that cannot be read (not UTF-8,
    a folder in its place, no permission) is a problem like any other: KnowledgeError."""
    texts = {}
    problems = []
    for name in knowledge_files(directory):
        path = directory / name
        if not path.exists():
            continue
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            problems.append(Problem(name, 1, "is a folder, not a file"))
            continue
        except OSError as exc:
            problems.append(Problem(name, 1, f"cannot be read: {exc.strerror or type(exc).__name__}"))
            continue
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            problems.append(
                Problem(name, line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8")
            )
    if problems:
        raise KnowledgeError(problems)
    return texts


def fingerprint(directory: Path) -> tuple[tuple[str, float, int], ...]:
    """Cheap change detector: name, mtime and size of each knowledge file."""
    result = []
    for name in knowledge_files(directory):
        path = directory / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        result.append((name, stat.st_mtime, stat.st_size))
    return tuple(result)


def load_knowledge(directory: Path | str) -> Knowledge:
    """Load and validate the structure of a knowledge directory; raise KnowledgeError."""
    return parse_knowledge(read_texts(Path(directory)))


def parse_knowledge(texts: dict[str, str]) -> Knowledge:
    """Build `Knowledge` from file texts (name → YAML), collecting every problem."""
    problems: list[Problem] = []
    docs: dict[str, Any] = {}
    for name in FILES:
        if name not in texts:
            if name != "synonyms.yaml":
                problems.append(Problem(name, 1, "file is missing"))
            docs[name] = None
            continue
        doc, found = load(texts[name], name)
        problems.extend(found)
        docs[name] = doc
    builder = _Builder(problems)
    contacts = builder.contacts(docs["contacts.yaml"])
    topics, answer_time = builder.topics(docs["topics.yaml"])
    renderer = _Renderer(contacts, problems)
    synonyms = builder.synonyms(docs["synonyms.yaml"])
    texts_file = builder.messages(docs["messages.yaml"], renderer)
    if "phone" in texts_file.messages:
        # FAQ answers about support contacts can show the very card /phone shows.
        renderer.values["support_card"] = texts_file.messages["phone"]
    faq = builder.faq(docs["faq.yaml"], topics, renderer)
    flows = builder.flows(docs["flows.yaml"], topics, renderer, set(faq))
    examples = [
        example
        for name in sorted(texts)
        if name.startswith(f"{EXAMPLES_DIR}/")
        for example in builder.examples(_parsed(name, texts[name], problems), name, topics, texts_file.smalltalk)
    ]
    builder.check_references(faq, flows, docs["faq.yaml"])
    builder.check_literals(texts)
    if problems:
        raise KnowledgeError(problems)
    digest = hashlib.sha256("\0".join(f"{k}\0{texts[k]}" for k in sorted(texts)).encode()).hexdigest()
    official = {
        phones.canonical(c.value): c
        for c in contacts.values()
        if c.verified and c.kind in ("phone", "short_number", "sms_sender") and phones.canonical(c.value)
    }
    return Knowledge(
        contacts=contacts,
        topics=topics,
        answer_time=answer_time,
        faq=faq,
        flows=flows,
        synonyms=synonyms,
        messages=texts_file.messages,
        smalltalk=texts_file.smalltalk,
        filler=texts_file.filler,
        out_of_scope=texts_file.out_of_scope,
        other_services=texts_file.other_services,
        examples=tuple(examples),
        version=digest[:12],
        official_numbers=official,
    )


def _parsed(name: str, text: str, problems: list[Problem]) -> Any:
    doc, found = load(text, name)
    problems.extend(found)
    return doc


@dataclass(frozen=True)
class _MessagesFile:
    messages: dict[str, str] = field(default_factory=dict)
    smalltalk: tuple[SmalltalkIntent, ...] = ()
    filler: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    other_services: tuple[str, ...] = ()


class _Renderer:
    """Resolves {placeholders} from verified contacts; unknown or unverified ones are problems."""

    def __init__(self, contacts: dict[str, Contact], problems: list[Problem]):
        self.values = {c.id: c.value for c in contacts.values() if c.verified}
        self.unverified = {c.id for c in contacts.values() if not c.verified}
        self.values["contacts"] = self._card(contacts)
        self.problems = problems

    @staticmethod
    def _card(contacts: dict[str, Contact]) -> str:
        lines = []
        for c in contacts.values():
            if c.verified and c.kind in ("phone", "short_number", "site"):
                lines.append(f"• {c.label}: {c.value}" + (f" ({c.note})" if c.note else ""))
        return "\n".join(lines)

    def render(
        self,
        text: str,
        file: str,
        line: int,
        runtime: frozenset[str] = frozenset(),
        at: PosMap | None = None,
        key: str = "",
    ) -> str:
        """`text` with its placeholders filled; a problem is reported on the line where it stands
        (`at` and `key`: the mapping and key the text came from, for a multi-line block)."""
        out = []
        cursor = 0

        def where(name: str) -> int:
            nonlocal cursor
            found = text.find("{" + name, cursor)
            if found < 0 or at is None:
                return line
            cursor = found + 1
            return at.line_in(key, found, text)

        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            self.problems.append(Problem(file, line, f"broken braces in text ({exc}); write {{{{ for a brace"))
            return text
        for literal, name, spec, conversion in parsed:
            out.append(literal)
            if name is None:
                continue
            place = where(name)
            if spec or conversion:
                self.problems.append(Problem(file, place, f"placeholder {{{name}}} must be a plain name"))
            if name in runtime:
                out.append("{" + name + "}")  # filled per message by Knowledge.text
            elif name in self.values:
                out.append(self.values[name])
            elif name in self.unverified:
                self.problems.append(
                    Problem(file, place, f"placeholder {{{name}}} names an unverified contact (verified: false)")
                )
            else:
                known = ", ".join("{" + k + "}" for k in sorted(self.values))
                self.problems.append(Problem(file, place, f"unknown placeholder {{{name}}} (known: {known})"))
        return "".join(out)


class _Builder:
    def __init__(self, problems: list[Problem]):
        self.problems = problems

    def problem(self, file: str, line: int, message: str) -> None:
        self.problems.append(Problem(file, line, message))

    # -- generic field access -------------------------------------------------------------------

    def items(self, doc: Any, file: str, key: str) -> Iterator[tuple[PosMap, int]]:
        if doc is None:
            return
        if not isinstance(doc, PosMap) or key not in doc:
            self.problem(file, getattr(doc, "line", 1), f"expected a top-level '{key}:' list")
            return
        seq = doc[key]
        if not isinstance(seq, PosList):
            self.problem(file, doc.line_of(key), f"'{key}' must be a list")
            return
        for item, line in zip(seq, seq.item_lines, strict=True):
            if not isinstance(item, PosMap):
                self.problem(file, line, f"each item of '{key}' must be a mapping of fields")
                continue
            yield item, line

    def text_field(self, item: PosMap, name: str, file: str, *, required: bool = True) -> str:
        if name not in item or item[name] is None:
            if required:
                self.problem(file, item.line, f"missing field '{name}'")
            return ""
        value = item[name]
        if isinstance(value, PosMap | PosList):
            self.problem(file, item.line_of(name), f"'{name}' must be text")
            return ""
        text = str(value).strip()
        if required and not text:
            self.problem(file, item.line_of(name), f"'{name}' is empty")
        return text

    def text_list(self, item: PosMap, name: str, file: str, *, required: bool = True) -> tuple[list[str], list[int]]:
        if name not in item or item[name] is None:
            if required:
                self.problem(file, item.line, f"missing field '{name}'")
            return [], []
        value = item[name]
        if not isinstance(value, PosList):
            self.problem(file, item.line_of(name), f"'{name}' must be a list")
            return [], []
        texts, lines = [], []
        for element, line in zip(value, value.item_lines, strict=True):
            if isinstance(element, PosMap | PosList) or element is None or not str(element).strip():
                self.problem(file, line, f"each item of '{name}' must be non-empty text")
                continue
            texts.append(str(element).strip())
            lines.append(line)
        return texts, lines

    def ident(self, item: PosMap, file: str, seen: dict[str, str] | None = None) -> str:
        ident = self.text_field(item, "id", file)
        if ident and not ID_RE.match(ident):
            self.problem(file, item.line_of("id"), f"id '{ident}' must be 1-30 characters of a-z, 0-9 and _")
        if ident and seen is not None:
            if ident in seen:
                self.problem(file, item.line_of("id"), f"duplicate id '{ident}' (first defined at {seen[ident]})")
            else:
                seen[ident] = f"{file}:{item.line_of('id')}"
        return ident

    # -- files ----------------------------------------------------------------------------------

    def contacts(self, doc: Any) -> dict[str, Contact]:
        file = "contacts.yaml"
        result: dict[str, Contact] = {}
        seen: dict[str, str] = {}
        for item, _line in self.items(doc, file, "contacts"):
            ident = self.ident(item, file, seen)
            kind = self.text_field(item, "kind", file)
            if kind and kind not in CONTACT_KINDS:
                self.problem(
                    file, item.line_of("kind"), f"unknown kind '{kind}' (one of {', '.join(sorted(CONTACT_KINDS))})"
                )
            verified = item.get("verified", False)
            if not isinstance(verified, bool):
                self.problem(file, item.line_of("verified"), "'verified' must be true or false")
                verified = False
            contact = Contact(
                id=ident,
                label=self.text_field(item, "label", file),
                value=self.text_field(item, "value", file),
                kind=kind,
                note=self.text_field(item, "note", file, required=False),
                source=self.text_field(item, "source", file),
                verified_on=self.text_field(item, "verified_on", file),
                verified=verified,
            )
            if ident:
                result[ident] = contact
        return result

    def topics(self, doc: Any) -> tuple[dict[str, Topic], dict[str, AnswerTime]]:
        file = "topics.yaml"
        topics: dict[str, Topic] = {}
        seen: dict[str, str] = {}
        for item, _line in self.items(doc, file, "topics"):
            ident = self.ident(item, file, seen)
            priority = self.text_field(item, "priority", file)
            if priority and priority not in PRIORITIES:
                self.problem(file, item.line_of("priority"), f"priority must be one of {', '.join(PRIORITIES)}")
            if ident:
                topics[ident] = Topic(ident, self.text_field(item, "title", file), priority or "normal")
        times: dict[str, AnswerTime] = {}
        block = doc.get("answer_time") if isinstance(doc, PosMap) else None
        for priority in PRIORITIES:
            entry = block.get(priority) if isinstance(block, PosMap) else None
            if not isinstance(entry, PosMap) or not isinstance(entry.get("minutes"), int):
                line = block.line if isinstance(block, PosMap) else getattr(doc, "line", 1)
                self.problem(file, line, f"answer_time.{priority} needs 'minutes' (a whole number) and 'text'")
                continue
            times[priority] = AnswerTime(entry["minutes"], self.text_field(entry, "text", file))
        return topics, times

    def synonyms(self, doc: Any) -> dict[str, tuple[str, ...]]:
        file = "synonyms.yaml"
        if doc is None:
            return {}
        block = doc.get("synonyms") if isinstance(doc, PosMap) else None
        if not isinstance(block, PosMap):
            self.problem(file, getattr(doc, "line", 1), "expected a top-level 'synonyms:' mapping")
            return {}
        result: dict[str, tuple[str, ...]] = {}
        owner: dict[str, str] = {}
        for canonical, variants in block.items():
            line = block.line_of(canonical)
            if not isinstance(variants, PosList) or not all(isinstance(v, str) and v.strip() for v in variants):
                self.problem(file, line, f"'{canonical}' must list its variants as text")
                continue
            for variant in variants:
                key = variant.strip().lower()
                if key in owner and owner[key] != canonical:
                    self.problem(
                        file, line, f"variant '{variant}' is listed under both '{owner[key]}' and '{canonical}'"
                    )
                owner[key] = canonical
            result[str(canonical).lower()] = tuple(v.strip().lower() for v in variants)
        return result

    def messages(self, doc: Any, renderer: _Renderer) -> _MessagesFile:
        file = "messages.yaml"
        if doc is None:
            return _MessagesFile()
        block = doc.get("messages") if isinstance(doc, PosMap) else None
        messages: dict[str, str] = {}
        if not isinstance(block, PosMap):
            self.problem(file, getattr(doc, "line", 1), "expected a top-level 'messages:' mapping")
        else:
            for key, runtime in MESSAGE_KEYS.items():
                if key not in block:
                    self.problem(file, block.line, f"missing message '{key}'")
                    continue
                text = self.text_field(block, key, file)
                messages[key] = renderer.render(text, file, block.line_of(key), runtime, block, key)
            for key in block:
                if key not in MESSAGE_KEYS:
                    self.problem(file, block.line_of(key), f"unknown message '{key}'")
        intents: list[SmalltalkIntent] = []
        for item, _line in self.items(doc, file, "smalltalk"):
            ident = self.ident(item, file)
            phrasings, _ = self.text_list(item, "phrasings", file)
            reply = renderer.render(
                self.text_field(item, "reply", file), file, item.line_of("reply"), at=item, key="reply"
            )
            intents.append(SmalltalkIntent(ident, tuple(phrasings), reply))
        filler: list[str] = []
        out_of_scope: list[str] = []
        if isinstance(doc, PosMap) and "filler" in doc:
            filler, _ = self.text_list(doc, "filler", file)
        other_services: list[str] = []
        if isinstance(doc, PosMap) and "out_of_scope" in doc:
            out_of_scope, _ = self.text_list(doc, "out_of_scope", file)
        if isinstance(doc, PosMap) and "other_services" in doc:
            other_services, _ = self.text_list(doc, "other_services", file)
        return _MessagesFile(messages, tuple(intents), tuple(filler), tuple(out_of_scope), tuple(other_services))

    def faq(self, doc: Any, topics: dict[str, Topic], renderer: _Renderer) -> dict[str, FaqEntry]:
        file = "faq.yaml"
        result: dict[str, FaqEntry] = {}
        seen: dict[str, str] = {}
        for item, line in self.items(doc, file, "entries"):
            ident = self.ident(item, file, seen)
            topic = self.topic(item, file, topics)
            question = self.text_field(item, "question", file)
            phrasings, phrasing_lines = self.phrasings(item, file)
            answer = renderer.render(
                self.text_field(item, "answer", file), file, item.line_of("answer"), at=item, key="answer"
            )
            if len(answer) > MAX_ANSWER:
                self.problem(
                    file,
                    item.line_of("answer"),
                    f"answer is {len(answer)} characters with contacts filled in; at most {MAX_ANSWER}",
                )
            related, _ = self.text_list(item, "related", file, required=False)
            if ident:
                result[ident] = FaqEntry(
                    ident, topic, question, tuple(phrasings), answer, tuple(related), file, line, tuple(phrasing_lines)
                )
        return result

    def examples(
        self, doc: Any, file: str, topics: dict[str, Topic], intents: tuple[SmalltalkIntent, ...]
    ) -> list[Example]:
        """One examples file: `topic:` and `examples:` (a list), or for small talk `intents:` (id → list)."""
        if doc is None:
            return []
        if not isinstance(doc, PosMap):
            self.problem(file, getattr(doc, "line", 1), "expected 'topic:' and 'examples:' (or 'intents:')")
            return []
        topic = self.topic(doc, file, topics)
        result: list[Example] = []
        if "examples" in doc:
            texts, lines = self.text_list(doc, "examples", file)
            result.extend(Example(t, topic, "", file, n) for t, n in zip(texts, lines, strict=True))
        if "intents" in doc:
            block = doc["intents"]
            known = {i.id for i in intents}
            if topic != "greeting_smalltalk":
                self.problem(file, doc.line_of("intents"), "'intents:' belongs to the greeting_smalltalk topic only")
            if not isinstance(block, PosMap):
                self.problem(file, doc.line_of("intents"), "'intents' must map an intent id to a list of examples")
                return result
            for intent in block:
                if intent not in known:
                    self.problem(
                        file, block.line_of(intent), f"unknown small-talk intent '{intent}' (see messages.yaml)"
                    )
                texts, lines = self.text_list(block, intent, file)
                result.extend(Example(t, topic, str(intent), file, n) for t, n in zip(texts, lines, strict=True))
        if "examples" not in doc and "intents" not in doc:
            self.problem(file, doc.line, "expected an 'examples:' list")
        for key in doc:
            if key not in ("topic", "examples", "intents"):
                self.problem(file, doc.line_of(key), f"unknown field '{key}'")
        return result

    def phrasings(self, item: PosMap, file: str) -> tuple[list[str], list[int]]:
        """An entry's or a flow's phrasings and their lines; fewer than MIN_PHRASINGS is a problem."""
        phrasings, lines = self.text_list(item, "phrasings", file)
        if "phrasings" in item and len(phrasings) < MIN_PHRASINGS:
            self.problem(
                file,
                item.line_of("phrasings"),
                f"at least {MIN_PHRASINGS} phrasings are needed, found {len(phrasings)}",
            )
        return phrasings, lines

    def topic(self, item: PosMap, file: str, topics: dict[str, Topic]) -> str:
        topic = self.text_field(item, "topic", file)
        if topic and topics and topic not in topics:
            self.problem(file, item.line_of("topic"), f"unknown topic '{topic}' (see topics.yaml)")
        return topic

    def flows(self, doc: Any, topics: dict[str, Topic], renderer: _Renderer, faq_ids: set[str]) -> dict[str, Flow]:
        file = "flows.yaml"
        result: dict[str, Flow] = {}
        seen: dict[str, str] = {i: "faq.yaml" for i in faq_ids}
        raw: list[tuple[str, PosMap]] = []
        for item, line in self.items(doc, file, "flows"):
            ident = self.ident(item, file, seen)
            topic = self.topic(item, file, topics)
            title = self.text_field(item, "title", file)
            phrasings, phrasing_lines = self.phrasings(item, file)
            start = self.text_field(item, "start", file)
            steps = self.steps(item, file, renderer)
            if start and steps and start not in steps:
                self.problem(file, item.line_of("start"), f"start step '{start}' does not exist in flow '{ident}'")
            if ident:
                result[ident] = Flow(
                    ident, topic, title, tuple(phrasings), start, steps, file, line, tuple(phrasing_lines)
                )
                raw.append((ident, item))
        for ident, item in raw:
            self.check_flow(result[ident], item, file, result)
        return result

    def steps(self, item: PosMap, file: str, renderer: _Renderer) -> dict[str, FlowStep]:
        steps: dict[str, FlowStep] = {}
        seen: dict[str, str] = {}
        for step, _line in self.items(item, file, "steps"):
            ident = self.ident(step, file, seen)
            text = renderer.render(self.text_field(step, "text", file), file, step.line_of("text"), at=step, key="text")
            end = step.get("end", False) is True
            options: list[FlowOption] = []
            for option, oline in self.items(step, file, "options") if "options" in step else ():
                label = self.text_field(option, "label", file)
                targets = [k for k in ("goto", "flow", "handoff") if k in option]
                if len(targets) != 1:
                    self.problem(file, oline, "an option needs exactly one of 'goto', 'flow' or 'handoff'")
                options.append(
                    FlowOption(
                        label=label,
                        goto=str(option["goto"]) if "goto" in option else None,
                        flow=str(option["flow"]) if "flow" in option else None,
                        handoff=option.get("handoff") is True,
                    )
                )
            if not options and not end:
                self.problem(file, step.line, f"step '{ident}' has no options and is not 'end: true': it leads nowhere")
            if ident:
                steps[ident] = FlowStep(ident, text, tuple(options), end)
        return steps

    def check_flow(self, flow: Flow, item: PosMap, file: str, flows: dict[str, Flow]) -> None:
        step_lines = {}
        seq = item.get("steps")
        if isinstance(seq, PosList):
            for step in seq:
                if isinstance(step, PosMap) and "id" in step:
                    step_lines[str(step["id"])] = step
        for step in flow.steps.values():
            node = step_lines.get(step.id)
            for index, option in enumerate(step.options):
                line = node["options"].item_lines[index] if node is not None else flow.line
                if option.goto is not None and option.goto not in flow.steps:
                    self.problem(
                        file,
                        line,
                        f"option '{option.label}' leads to step '{option.goto}', which flow '{flow.id}' does not have",
                    )
                if option.flow is not None and option.flow not in flows:
                    self.problem(
                        file, line, f"option '{option.label}' leads to flow '{option.flow}', which does not exist"
                    )
        if flow.start not in flow.steps:
            return
        reachable = {flow.start}
        frontier = [flow.start]
        while frontier:
            for option in flow.steps[frontier.pop()].options:
                if option.goto in flow.steps and option.goto not in reachable:
                    reachable.add(option.goto)
                    frontier.append(option.goto)
        for step in flow.steps.values():
            if step.id not in reachable:
                node = step_lines.get(step.id)
                self.problem(
                    file,
                    node.line if node is not None else flow.line,
                    f"step '{step.id}' of flow '{flow.id}' cannot be reached from '{flow.start}'",
                )
        exits = any(
            step.end or any(o.handoff or o.flow for o in step.options)
            for sid, step in flow.steps.items()
            if sid in reachable
        )
        if not exits:
            self.problem(
                file, flow.line, f"flow '{flow.id}' can end nowhere: no reachable end step, handoff or other flow"
            )

    def check_references(self, faq: dict[str, FaqEntry], flows: dict[str, Flow], doc: Any) -> None:
        file = "faq.yaml"
        items = {str(item.get("id")): item for item, _ in self.items(doc, file, "entries")} if doc is not None else {}
        for entry in faq.values():
            for ref in entry.related:
                if ref not in faq and ref not in flows:
                    node = items.get(entry.id)
                    line = node.line_of("related") if node is not None else entry.line
                    self.problem(file, line, f"related entry '{ref}' of '{entry.id}' does not exist")

    def check_literals(self, texts: dict[str, str]) -> None:
        """No phone number may be written outside contacts.yaml: that is how fake numbers ship."""
        for name, text in texts.items():
            if name == "contacts.yaml" or name.startswith(f"{EXAMPLES_DIR}/"):
                continue  # examples are training material, never shown: a fraudster's number may be quoted
            for number, line in enumerate(text.splitlines(), start=1):
                content = line.split("#", 1)[0] if line.lstrip().startswith("#") else line
                if phones.looks_like_phone(content):
                    self.problem(name, number, "a literal phone number; name contacts by placeholder, e.g. {hotline}")
