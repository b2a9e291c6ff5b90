"""The conversation: one incoming message in, the replies out.

`Dialogue.handle`, in order: take the chat's lock (in this process, then across worker processes
through the store: one message of a chat at a time, in order; different chats run concurrently) →
drop a duplicate update → load the session → redact personal data →
button payloads → commands → an open ticket takes the text → a rating → an active flow step → the
matcher → save the session and the redacted transcript in one step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rapidfuzz import fuzz

from bot.check import validate_dir
from bot.flows import Payload, menu_buttons, parse_payload, step_reply
from bot.knowledge import Flow, Knowledge, KnowledgeError, fingerprint
from bot.matching import OUT_OF_SCOPE, Decision, Matcher
from bot.messages import Button, Incoming, Reply
from bot.metrics import Metrics
from bot.phones import pretty
from bot.records import OutboxItem, Session, Ticket
from bot.safety import Redacted, hidden_what, redact
from bot.storage.base import Store, TicketWork, Turn, numbered_reply
from bot.tickets import TRANSCRIPT_LINES, Desk, ticket_label

log = logging.getLogger(__name__)
REFUSED_LOG = "knowledge edit refused, the last good version keeps answering:\n%s"  # a front end may say it instead

MAX_TEXT = 4000  # longer messages are read up to here (Telegram's own limit is 4096)
OPTION_MATCH = 85.0  # typed text that matches a step's button label this well presses it
MAX_KEY = 200  # characters of lemmas that group unanswered questions
LOW_CONFIDENCE = 0.75  # an answer given with a topic probability below this is logged for editors
URGENT_WARNINGS = ("fraud_security",)  # topics whose answers are warnings: given even to a chat a person holds


def unanswered_key(normalized: str, text: str) -> str:
    """How `stats unanswered` groups a question: by its lemmas, or by its shape when it has none
    ("7", "12345", "👍"), so bare numbers and emoji form groups of their own, never "(empty)"."""
    if normalized:
        return normalized[:MAX_KEY]
    stripped = text.strip()
    if not stripped:
        return "(пустое сообщение)"
    if all(ch.isdigit() or ch in " +-()." for ch in stripped):
        return "(только цифры)"
    if not any(ch.isalnum() for ch in stripped):
        return "(эмодзи или знаки)"
    return "(слова без смысла для поиска)"


class KnowledgeSource:
    """The current knowledge and matcher; reloads edited files, keeps the last good on a bad edit.

    In a running bot `poll()` looks at the files (a few stat calls) and validates a changed
    directory in a worker thread: validating builds the matcher and takes seconds, and on the event
    loop that would freeze every chat. Messages are answered with the last good knowledge meanwhile.
    """

    def __init__(
        self,
        directory: Path | str | None,
        *,
        check_every: float = 1.0,
        loaded: tuple[Knowledge, Matcher] | None = None,
    ):
        self.directory = Path(directory) if directory is not None else None
        self.check_every = check_every
        self._print = fingerprint(self.directory) if self.directory else ()
        if loaded is None:
            if self.directory is None:
                raise ValueError("KnowledgeSource needs a directory or loaded knowledge")
            loaded = validate_dir(self.directory)  # a bad start is the caller's error
        self.knowledge, self.matcher = loaded
        self.loaded_at = time.time()
        self.problems: list[str] = []
        self._checked = time.monotonic()
        self.reloading: asyncio.Task[bool] | None = None  # a validation running in a thread

    @classmethod
    def fixed(cls, knowledge: Knowledge, matcher: Matcher) -> KnowledgeSource:
        """Knowledge that never reloads (tests, benchmarks)."""
        return cls(None, check_every=float("inf"), loaded=(knowledge, matcher))

    def _changed(self, force: bool) -> tuple[tuple[str, float, int], ...] | None:
        """The new fingerprint when it is time to look and the files changed, else None."""
        if self.directory is None:
            return None
        now = time.monotonic()
        if not force and now - self._checked < self.check_every:
            return None
        self._checked = now
        try:
            current = fingerprint(self.directory)
        except OSError as exc:  # the directory itself went away or is unreadable
            self._refused([f"{self.directory}: {exc.strerror or type(exc).__name__}"])
            return None
        return None if current == self._print else current

    def refresh(self, *, force: bool = False) -> bool:
        """Reload now, in this thread, if the files changed; True when new knowledge took effect."""
        current = self._changed(force)
        if current is None:
            return False
        self._print = current
        return self._apply(self._validate())

    def poll(self) -> None:
        """Start a reload in a worker thread when the files changed; never waits for it."""
        if self.reloading is not None and not self.reloading.done():
            return
        current = self._changed(force=False)
        if current is None:
            return
        self._print = current
        self.reloading = asyncio.create_task(self._reload(), name="knowledge-reload")

    async def _reload(self) -> bool:
        return self._apply(await asyncio.to_thread(self._validate))

    def _validate(self) -> tuple[Knowledge, Matcher] | list[str]:
        """The new knowledge, or the problems that refuse it (never raises: a bad edit costs no reply)."""
        assert self.directory is not None
        try:
            return validate_dir(self.directory)
        except KnowledgeError as exc:
            return [str(p) for p in exc.problems]
        except Exception as exc:  # anything else the files can do to the loader
            log.exception("knowledge reload failed")
            return [f"{self.directory}: cannot load the knowledge ({type(exc).__name__}: {exc})"]

    def _apply(self, outcome: tuple[Knowledge, Matcher] | list[str]) -> bool:
        if isinstance(outcome, list):
            self._refused(outcome)
            return False
        self.knowledge, self.matcher = outcome
        self.problems = []
        self.loaded_at = time.time()
        log.info("knowledge reloaded (version %s)", self.knowledge.version)
        return True

    def _refused(self, problems: list[str]) -> None:
        self.problems = problems
        log.error(REFUSED_LOG, "\n".join(problems))


@dataclass(frozen=True)
class Handled:
    """What a turn leaves to the front end."""

    queued: int = 0  # replies committed to the outbox with the turn: the sender delivers them
    send_now: tuple[Reply, ...] = ()  # replies that are not stored: send them directly, best effort


@dataclass
class _Turn:
    """What handling one message produced (saved together at the end)."""

    session: Session
    incoming: Incoming
    k: Knowledge
    replies: list[Reply] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)
    unanswered: list[tuple[str, str, str]] = field(default_factory=list)
    tickets: TicketWork = field(default_factory=TicketWork)  # saved with the turn
    open_ticket: Ticket | None = None  # the chat's open ticket when the turn began

    def say(self, reply: Reply) -> None:
        self.replies.append(reply)
        self.transcript.append(("bot", reply.text))


class Dialogue:
    """The platform-neutral core. Adapters call `handle`; staff tools use `desk`."""

    def __init__(
        self,
        source: KnowledgeSource,
        store: Store,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ):
        self.source = source
        self.store = store
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.desk = Desk(store, lambda: self.source.knowledge, clock)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    @property
    def knowledge(self) -> Knowledge:
        return self.source.knowledge

    async def handle(self, incoming: Incoming) -> list[Reply]:
        """The replies to show now (the terminal chat, tests): saved with the turn, not queued."""
        handled = await self._handle(incoming, queue=False)
        return list(handled.send_now)

    async def handle_queued(self, incoming: Incoming) -> Handled:
        """For a front end with an outbox sender: the replies go into the outbox in the same
        transaction as the turn and its "processed" mark, so a crash loses neither or both; this
        returns only after that commit, so the caller may then acknowledge the update."""
        return await self._handle(incoming, queue=True)

    async def _handle(self, incoming: Incoming, *, queue: bool) -> Handled:
        self.source.poll()
        started = time.perf_counter()
        key = (incoming.platform, incoming.chat_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                try:
                    # Then the chat's lock across processes (several workers on one PostgreSQL):
                    # one turn of a chat at a time however many workers receive its messages.
                    async with self.store.chat_lock(*key):
                        return await self._turn(incoming, queue, started)
                except self.store.failures as exc:
                    # The turn is not saved (disk full, database locked …): say so rather than keep
                    # silent. Only the error's kind is logged: no chat, no text.
                    log.error("a %s turn could not be saved: %s: %s", incoming.platform, type(exc).__name__, exc)
                    return Handled(send_now=(Reply(self.source.knowledge.text("technical_problem")),))
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
                self._locks.pop(key, None)

    async def _turn(self, incoming: Incoming, queue: bool, started: float) -> Handled:
        key = (incoming.platform, incoming.chat_id)
        # Checked under the chat's locks: a duplicate delivered concurrently, to this process or to
        # another worker, waits for the first and then finds it marked processed.
        start = await self.store.begin_turn(*key, incoming.update_id)
        if start.seen:
            self.metrics.duplicate(incoming.platform)
            return Handled()
        self.metrics.message_in(incoming.platform)
        session = start.session or Session(*key)
        turn = _Turn(session, incoming, self.source.knowledge, open_ticket=start.ticket)
        await self._route(turn)
        now = self.clock()
        outbox = tuple(OutboxItem(*key, reply, created_at=now) for reply in turn.replies) if queue else ()
        number = await self.store.commit_turn(
            Turn(
                session=session,
                update_id=incoming.update_id,
                transcript=tuple(turn.transcript),
                unanswered=tuple(turn.unanswered),
                at=now,
                outbox=outbox,
                tickets=turn.tickets or None,
            )
        )
        if number is not None:
            self.metrics.handoff(incoming.platform)
        self.metrics.turn_done(incoming.platform, len(turn.replies), time.perf_counter() - started)
        if queue:
            return Handled(queued=len(outbox))
        replies = turn.replies if number is None else [numbered_reply(r, number) for r in turn.replies]
        return Handled(send_now=tuple(replies))

    # -- routing ---------------------------------------------------------------------------------

    async def _route(self, t: _Turn) -> None:
        inc, s, k = t.incoming, t.session, t.k
        if inc.user_id:
            s.user_id = inc.user_id
        if inc.user_name:
            s.user_name = inc.user_name
        raw = inc.text or ""
        if len(raw) > MAX_TEXT:
            t.replies.append(Reply(k.text("long_text", limit=str(MAX_TEXT))))
            raw = raw[:MAX_TEXT]
        raw = "".join(ch for ch in raw if ch.isprintable() or ch in "\n\t")
        red = redact(raw)
        text = red.text.strip()
        matching_text = red.for_matching.strip()
        if text or inc.attachments:
            shown = text + "".join(f" [{a}]" for a in inc.attachments)
            t.transcript.append(("citizen", shown.strip()))
        self._warn_once(t, red)

        if inc.payload is not None:
            payload = parse_payload(inc.payload)
            if payload is None:
                t.say(Reply(k.text("unknown_button"), menu_buttons(k)))
                return
            await self._button(t, payload)
            return

        if text.startswith("/"):
            await self._command(t, text)
            return

        if not text and not inc.attachments:
            # Before the ticket: an empty message must not become an empty line in it.
            t.say(Reply(k.text("empty"), menu_buttons(k)))
            return

        ticket = t.open_ticket
        if ticket is not None:
            self.desk.citizen_wrote(ticket, text, t.tickets, tuple(str(a) for a in inc.attachments), inc.desk_extras)
            if text:
                await self._while_ticket_open(t, ticket, matching_text or text)
            t.say(
                Reply(
                    k.text("ticket_added", ticket=ticket_label(ticket.number)),
                    (Button(k.text("btn_cancel_ticket"), "cancel"),),
                )
            )
            return

        if not text:
            t.say(Reply(k.text("non_text"), menu_buttons(k)))
            return

        if s.flow_id and await self._inside_flow(t, text, matching_text):
            return
        self._decide(t, matching_text or text)

    @staticmethod
    def _warn_once(t: _Turn, red: Redacted) -> None:
        """Tell the citizen, once per session, that something was hidden and why."""
        s, k = t.session, t.k
        if red.has_secret and not s.warned:
            s.warned = s.warned_data = True  # the secrets warning also says the data was hidden
            t.say(Reply(k.text("sensitive_warning")))
        elif red.found and not red.has_secret and not s.warned_data:
            s.warned_data = True
            t.say(Reply(k.text("sensitive_data_warning", what=hidden_what(red.found))))

    async def _while_ticket_open(self, t: _Turn, ticket: Ticket, text: str) -> None:
        """A message to an open ticket: a warning about fraud or a hacked account is never held back
        (and makes the ticket urgent); while nobody has taken the ticket, a confident answer is given
        too, so nobody waits a day for what the knowledge already says. Once staff hold it, the
        bot keeps out of their conversation. What the bot says is added to the ticket for staff."""
        d = self.source.matcher.decide(text)
        warning = d.outcome == "number_check" or (d.outcome in ("answer", "flow") and d.topic in URGENT_WARNINGS)
        if not warning and (ticket.status != "open" or d.outcome not in ("answer", "flow")):
            return
        said = len(t.replies)
        if d.topic:
            self._saw(t, d.topic)
        self._act(t, d, text)
        if warning and d.topic:
            self.desk.escalate(ticket, d.topic, t.tickets)
        self.desk.bot_said(ticket, [r.text for r in t.replies[said:]], t.tickets)

    def _decide(self, t: _Turn, text: str) -> None:
        s = t.session
        decision = self.source.matcher.decide(text)
        s.last_candidates = [{"id": c.target_id, "topic": c.topic, "score": c.score} for c in decision.candidates]
        if decision.topic:
            self._saw(t, decision.topic)
        self._act(t, decision, text)

    def _act(self, t: _Turn, d: Decision, text: str) -> None:
        k = t.k
        self.metrics.decision(d.outcome)
        operator = Button(k.text("btn_operator"), "op")
        if d.outcome == "number_check":
            for number in d.numbers:
                contact = k.official_numbers.get(number)
                shown = pretty(number)
                if contact is None:
                    t.say(
                        Reply(
                            k.text("number_not_official", number=shown),
                            (Button(k.flows["fraud"].title, "f:fraud"),) if "fraud" in k.flows else (),
                        )
                    )
                elif contact.kind == "sms_sender":
                    t.say(Reply(k.text("number_sms_sender", number=shown)))
                else:
                    t.say(Reply(k.text("number_official", number=shown)))
            return
        if d.outcome == "smalltalk":
            intent = next((i for i in k.smalltalk if i.id == d.smalltalk), None)
            t.say(Reply(intent.reply if intent else k.text("welcome")))
            return
        if d.outcome in ("answer", "flow") and d.probability < LOW_CONFIDENCE:
            # Answered, but unsure: editors see it in `stats unanswered` to label it.
            t.unanswered.append((redact(text).text, unanswered_key(d.normalized, text), "unsure"))
        if d.outcome == "answer" and d.target_id in k.faq:
            self._answer(t, d.target_id)
            # "Act now" after a code was given away: a caller's unknown number still gets its warning;
            # an official one gets no reassurance (the real hotline never asks for codes: it was spoofed).
            for number in d.numbers:
                if number not in k.official_numbers:
                    t.say(Reply(k.text("number_not_official", number=pretty(number))))
            return
        if d.outcome == "flow" and d.target_id in k.flows:
            self._start_flow(t, k.flows[d.target_id])
            return
        t.unanswered.append((redact(text).text, unanswered_key(d.normalized, text), d.outcome))
        if d.outcome == "clarify":
            buttons = [Button(c.label[:60], f"{'f' if c.kind == 'flow' else 'a'}:{c.target_id}") for c in d.candidates]
            t.say(Reply(k.text("clarify"), (*buttons, operator)))
            return
        key = "out_of_scope" if d.target_id == OUT_OF_SCOPE else "fallback"
        t.say(Reply(k.text(key), (operator, Button(k.text("btn_phone"), "phone"))))

    @staticmethod
    def _saw(t: _Turn, topic: str) -> None:
        """The conversation is about `topic` now; an urgent one (a hacked account, fraud, a blocked
        account) is remembered so that a ticket opened later in the conversation is urgent too."""
        t.session.last_topic = topic
        if topic in t.k.topics and t.k.topics[topic].priority == "urgent":
            t.session.urgent_topic = topic

    def _answer(self, t: _Turn, faq_id: str) -> None:
        k = t.k
        entry = k.faq[faq_id]
        self._saw(t, entry.topic)
        buttons = []
        for ref in entry.related[:3]:
            target = k.target(ref)
            if target is not None:
                buttons.append(Button(target.question[:60], f"{'f' if ref in k.flows else 'a'}:{ref}"))
        buttons.append(Button(k.text("btn_operator"), "op"))
        t.say(Reply(entry.answer, tuple(buttons)))

    # -- flows -----------------------------------------------------------------------------------

    def _start_flow(self, t: _Turn, flow: Flow) -> None:
        s = t.session
        s.flow_id, s.step_id, s.history, s.pending_text = flow.id, flow.start, [], None
        self._saw(t, flow.topic)
        self._show_step(t)

    def _show_step(self, t: _Turn) -> None:
        s, k = t.session, t.k
        flow = k.flows.get(s.flow_id or "")
        step = flow.steps.get(s.step_id or "") if flow else None
        if flow is None or step is None:
            # The flow was edited away under this conversation: start over gracefully.
            self._leave_flow(s)
            t.say(Reply(k.text("unknown_button"), menu_buttons(k)))
            return
        mark = f"{flow.id}/{step.id}"
        if mark not in s.steps_tried:
            s.steps_tried.append(mark)
        t.say(step_reply(k, flow, step, can_go_back=bool(s.history)))

    @staticmethod
    def _leave_flow(s: Session) -> None:
        s.flow_id, s.step_id, s.history, s.pending_text = None, None, [], None

    async def _inside_flow(self, t: _Turn, text: str, matching_text: str) -> bool:
        """Typed text inside a flow: a button label, a new question (confirm leaving), or not understood."""
        s, k = t.session, t.k
        flow = k.flows.get(s.flow_id or "")
        step = flow.steps.get(s.step_id or "") if flow else None
        if flow is None or step is None:
            self._leave_flow(s)
            return False
        labels = [(o.label, Payload("o", flow.id, step.id, i)) for i, o in enumerate(step.options)]
        labels += [
            (k.text("btn_back"), Payload("back")),
            (k.text("btn_home"), Payload("home")),
            (k.text("btn_operator"), Payload("op")),
        ]
        if step.end:
            labels += [(k.text("btn_helped"), Payload("y", flow.id)), (k.text("btn_not_helped"), Payload("n", flow.id))]
        folded = text.lower().strip(" .!")
        best = max(labels, key=lambda lp: fuzz.ratio(folded, lp[0].lower()))
        if fuzz.ratio(folded, best[0].lower()) >= OPTION_MATCH:
            await self._button(t, best[1])
            return True
        decision = self.source.matcher.decide(matching_text or text)
        if decision.outcome in ("smalltalk", "number_check"):
            self._act(t, decision, text)
            return True
        if decision.target_id == flow.id or (decision.outcome == "clarify" and decision.topic == flow.topic):
            self._show_step(t)  # more words about the flow's own problem: carry on where we are
            return True
        if decision.outcome in ("answer", "flow", "clarify"):
            s.pending_text = matching_text or text
            t.say(
                Reply(
                    k.text("flow_leave_confirm", title=flow.title),
                    (Button(k.text("btn_leave_flow"), "leave"), Button(k.text("btn_stay_flow"), "stay")),
                )
            )
            return True
        return False

    # -- buttons and commands --------------------------------------------------------------------

    async def _button(self, t: _Turn, p: Payload) -> None:
        s, k = t.session, t.k
        if p.kind == "a":
            if p.target in k.faq:
                self._answer(t, p.target)
            elif p.target in k.flows:
                self._start_flow(t, k.flows[p.target])
            else:
                t.say(Reply(k.text("unknown_button"), menu_buttons(k)))
        elif p.kind == "f":
            if p.target in k.flows:
                self._start_flow(t, k.flows[p.target])
            else:
                t.say(Reply(k.text("unknown_button"), menu_buttons(k)))
        elif p.kind == "o":
            await self._option(t, p)
        elif p.kind == "y":
            self._leave_flow(s)
            t.say(Reply(k.text("flow_helped")))
        elif p.kind in ("n", "op"):
            await self._handoff(t, "flow_end" if p.kind == "n" else "button")
        elif p.kind == "back":
            if s.flow_id and s.history:
                s.step_id = s.history.pop()
                self._show_step(t)
            elif s.flow_id:
                self._show_step(t)
            else:
                t.say(Reply(k.text("welcome"), menu_buttons(k)))
        elif p.kind == "home":
            self._leave_flow(s)
            t.say(Reply(k.text("welcome"), menu_buttons(k)))
        elif p.kind == "phone":
            t.say(Reply(k.text("phone")))
        elif p.kind == "leave":
            pending = s.pending_text
            self._leave_flow(s)
            if pending:
                self._decide(t, pending)
            else:
                t.say(Reply(k.text("welcome"), menu_buttons(k)))
        elif p.kind == "stay":
            s.pending_text = None
            if s.flow_id:
                self._show_step(t)
            else:
                t.say(Reply(k.text("welcome"), menu_buttons(k)))
        elif p.kind == "cancel":
            await self._cancel(t)
        elif p.kind == "r":
            await self._rate(t, p.ticket, p.rating)

    async def _option(self, t: _Turn, p: Payload) -> None:
        s, k = t.session, t.k
        flow = k.flows.get(p.target)
        step = flow.steps.get(p.step) if flow else None
        if flow is None or step is None or p.index >= len(step.options):
            t.say(Reply(k.text("unknown_button"), menu_buttons(k)))
            return
        option = step.options[p.index]
        if option.handoff:
            s.flow_id, s.step_id = flow.id, step.id
            await self._handoff(t, "flow_end")
        elif option.flow and option.flow in k.flows:
            self._start_flow(t, k.flows[option.flow])
        elif option.goto:
            if s.flow_id == flow.id and s.step_id and s.step_id != option.goto:
                s.history.append(s.step_id)
            elif s.flow_id != flow.id:
                s.history = [step.id]
            s.flow_id, s.step_id, s.pending_text = flow.id, option.goto, None
            self._saw(t, flow.topic)
            self._show_step(t)

    async def _command(self, t: _Turn, text: str) -> None:
        s, k = t.session, t.k
        command, _, argument = text.partition(" ")
        command = command.split("@", 1)[0].lower()  # /start@SomeBot in groups
        argument = argument.strip()
        if command == "/start":
            self._leave_flow(s)
            if argument in k.flows:
                self._start_flow(t, k.flows[argument])
            elif argument in k.faq:
                self._answer(t, argument)
            else:
                t.say(Reply(k.text("welcome"), menu_buttons(k)))
        elif command == "/phone":
            t.say(Reply(k.text("phone")))
        elif command == "/help":
            t.say(Reply(k.text("help"), menu_buttons(k)))
        elif command == "/operator":
            await self._handoff(t, "command", argument)
        elif command == "/cancel":
            await self._cancel(t)
        else:
            t.say(Reply(k.text("help"), menu_buttons(k)))

    # -- tickets ---------------------------------------------------------------------------------

    async def _handoff(self, t: _Turn, reason: str, note: str = "") -> None:
        """Open a ticket; with one open already, the request (and `note`, what came with it) joins it."""
        s, k = t.session, t.k
        existing = await self.store.open_ticket_for(s.platform, s.chat_id)
        if existing is not None:
            self.desk.citizen_wrote(
                existing, note or k.text("btn_operator"), t.tickets, desk_extras=t.incoming.desk_extras
            )
            t.say(
                Reply(
                    k.text("ticket_open_already", ticket=ticket_label(existing.number)),
                    (Button(k.text("btn_cancel_ticket"), "cancel"),),
                )
            )
            return
        refusal = await self.desk.refusal(s.platform, s.chat_id)
        if refusal is not None:
            t.say(Reply(k.text(refusal), (Button(k.text("btn_phone"), "phone"),)))
            return
        flow = k.flows.get(s.flow_id or "")
        history = await self.store.recent_transcript(s.platform, s.chat_id, TRANSCRIPT_LINES)
        # Number 0 until the turn is committed: the ticket, its desk card and this confirmation are
        # saved in one transaction, and the confirmation gets the number the store gives it.
        ticket = self.desk.open(s, reason, t.transcript, history, t.tickets, topic=flow.topic if flow else None)
        self.desk.extras(ticket, t.incoming.desk_extras, t.tickets)  # a photo captioned /operator
        # This turn's lines are already in the ticket; the transcript keeps them for the chat too.
        self._leave_flow(s)
        s.steps_tried, s.urgent_topic = [], None
        answer_time = k.answer_time[ticket.priority].text
        t.say(
            Reply(
                k.text("ticket_opened", ticket=ticket_label(ticket.number), answer_time=answer_time),
                (Button(k.text("btn_cancel_ticket"), "cancel"),),
            )
        )

    async def _cancel(self, t: _Turn) -> None:
        s, k = t.session, t.k
        ticket = await self.store.open_ticket_for(s.platform, s.chat_id)
        if ticket is not None:
            self.desk.cancel(ticket, t.tickets)
            t.say(Reply(k.text("ticket_cancelled", ticket=ticket_label(ticket.number))))
        elif s.flow_id:
            self._leave_flow(s)
            t.say(Reply(k.text("welcome"), menu_buttons(k)))
        else:
            t.say(Reply(k.text("cancel_nothing")))

    async def _rate(self, t: _Turn, number: int, rating: int) -> None:
        s, k = t.session, t.k
        ticket = await self.store.get_ticket(number)
        if ticket is None or (ticket.platform, ticket.chat_id) != (s.platform, s.chat_id) or ticket.status != "closed":
            t.say(Reply(k.text("unknown_button")))
            return
        if ticket.rating is None:
            self.desk.rate(ticket, rating, t.tickets)
        t.say(Reply(k.text("rating_thanks")))
