"""`gosbot`: the terminal front end and the tools for editors and staff.

gosbot chat [--chat ID]         talk to the bot (interactive, or one message per line on stdin)
gosbot ask [--json] [TEXT]      show the decision for a question
gosbot eval FILE.tsv [--json]   score decisions on a labelled file
gosbot check [DIR]              validate the knowledge, file:line problems, exit 1 if any
gosbot tickets …                the staff desk in the terminal
gosbot stats unanswered         what citizens asked that the knowledge did not answer
gosbot examples merge FILE.tsv  labelled questions into knowledge/examples/
gosbot run                      Telegram and/or VK when their tokens are set, else the chat
gosbot forget --platform P --chat ID   erase a citizen (tickets keep number and status)
gosbot audit [DB]               where a database still holds something like personal data
gosbot migrate                  bring the store's schema up to date (SQLite file or PostgreSQL)
gosbot copy-db FILE URL         move a deployment from a SQLite file to PostgreSQL
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from pathlib import Path

from bot.config import Settings
from bot.storage.base import StoreUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command is None:
        args = parser.parse_args(["chat"])
    handler = _COMMANDS[args.command]
    missing = _missing_knowledge(args, settings)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    try:
        return handler(args, settings) or 0
    except StoreUnavailable as exc:  # unwritable, locked, not a database: one line, no traceback
        print(f"gosbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


DATABASE_ONLY = frozenset({"stats", "forget", "audit", "migrate", "copy-db"})  # commands that need no knowledge


def _missing_knowledge(args: argparse.Namespace, settings: Settings) -> str | None:
    """One line for a command started where there is no knowledge (outside the repository), instead
    of a "file is missing" per file: where it looked and what to set."""
    if args.command in DATABASE_ONLY or getattr(args, "dir", None):
        return None  # these read only the database; an explicit directory is checked by its command
    directory = settings.knowledge
    if (directory / "faq.yaml").is_file() or (directory.is_dir() and any(directory.iterdir())):
        return None
    return (
        f"gosbot: no knowledge in {directory.resolve()} (GOSBOT_KNOWLEDGE, default ./knowledge): "
        "run gosbot from the repository's root or set GOSBOT_KNOWLEDGE=/path/to/gosbot/knowledge"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gosbot", description="Gosuslugi support bot")
    sub = parser.add_subparsers(dest="command")
    chat = sub.add_parser("chat", help="talk to the bot in the terminal")
    chat.add_argument("--chat", default="local", help="chat id (a conversation is kept per id)")
    ask = sub.add_parser("ask", help="show the matcher's decision for a question")
    ask.add_argument("--json", action="store_true", help="one JSON object per question")
    ask.add_argument("text", nargs="*", help="the question (default: one per line from stdin)")
    ev = sub.add_parser("eval", help="score decisions on a labelled TSV (text<TAB>topic)")
    ev.add_argument("file")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--mistakes", action="store_true", help="list the rows decided wrongly")
    ev.add_argument(
        "--cv", type=int, metavar="K", help="K-fold cross-validation: train on the knowledge and K-1 folds of FILE"
    )
    ev.add_argument("--seed", type=int, default=0, help="how the rows are shuffled into folds (with --cv)")
    check = sub.add_parser("check", help="validate knowledge files")
    check.add_argument("dir", nargs="?", default=None)
    tickets = sub.add_parser("tickets", help="staff desk in the terminal")
    tsub = tickets.add_subparsers(dest="action", required=True)
    tl = tsub.add_parser("list")
    tl.add_argument("--status", choices=["open", "taken", "closed", "cancelled"])
    tl.add_argument("--overdue", action="store_true")
    tl.add_argument("--json", action="store_true")
    ts = tsub.add_parser("show")
    ts.add_argument("number", type=int)
    ts.add_argument("--json", action="store_true")
    tt = tsub.add_parser("take")
    tt.add_argument("number", type=int)
    tt.add_argument("--as", dest="operator", required=True)
    tt.add_argument("--force", action="store_true", help="take over a ticket another operator holds")
    signed = "your name (default: whoever holds the ticket)"
    tr = tsub.add_parser("reply")
    tr.add_argument("number", type=int)
    tr.add_argument("text", nargs="+")
    tr.add_argument("--as", dest="operator", default=None, help=signed)
    tn = tsub.add_parser("note")
    tn.add_argument("number", type=int)
    tn.add_argument("text", nargs="+")
    tn.add_argument("--as", dest="operator", default=None, help=signed)
    tc = tsub.add_parser("close")
    tc.add_argument("number", type=int)
    tc.add_argument("--as", dest="operator", default=None, help=signed)
    stats = sub.add_parser("stats", help="reports for editors")
    ssub = stats.add_subparsers(dest="report", required=True)
    su = ssub.add_parser("unanswered")
    su.add_argument("--days", type=int, default=30)
    su.add_argument("--limit", type=int, default=30)
    su.add_argument(
        "--tsv", action="store_true", help="text<TAB>topic<TAB>count<TAB>outcome for labelling (topic left empty)"
    )
    examples = sub.add_parser("examples", help="training examples for the classifier")
    esub = examples.add_subparsers(dest="action", required=True)
    em = esub.add_parser("merge", help="append a labelled export (text<TAB>topic) to knowledge/examples/")
    em.add_argument("file")
    em.add_argument("--dir", default=None, help="the knowledge directory (default: GOSBOT_KNOWLEDGE)")
    sub.add_parser("run", help="run the configured platforms (Telegram, VK), or the terminal chat")
    fg = sub.add_parser("forget", help="erase a citizen's sessions, transcripts and unanswered questions")
    fg.add_argument("--platform", required=True, help="telegram, vk, console …")
    fg.add_argument("--chat", required=True, help="the chat id on that platform")
    au = sub.add_parser("audit", help="scan a SQLite database for anything that still looks like personal data")
    au.add_argument("db", nargs="?", default=None, help="the database file (default: GOSBOT_DB)")
    sub.add_parser("migrate", help="apply the schema migrations to GOSBOT_DATABASE_URL or GOSBOT_DB")
    cp = sub.add_parser("copy-db", help="copy everything from a SQLite file into an empty PostgreSQL database")
    cp.add_argument("sqlite_file")
    cp.add_argument("postgres_url")
    return parser


# -- knowledge tools ---------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from bot.check import check_all

    directory = Path(args.dir) if args.dir else settings.knowledge
    if not directory.is_dir():
        print(f"{directory}: no such knowledge directory", file=sys.stderr)
        return 1
    problems, warnings = check_all(directory)
    for problem in [*problems, *warnings]:
        print(f"{directory / problem.file}:{problem.line}: {problem.message}")
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{directory}: ok" + (f" ({len(warnings)} warning(s))" if warnings else ""))
    return 0


def _load_matcher(settings: Settings):  # type: ignore[no-untyped-def]
    """Structure must be valid; confusable phrasings are `check`'s business, not a reason to refuse `ask`."""
    from bot.knowledge import KnowledgeError, load_knowledge
    from bot.matching import Matcher

    try:
        return Matcher(load_knowledge(settings.knowledge))
    except KnowledgeError as exc:
        print(f"the knowledge in {settings.knowledge} has problems; run `gosbot check`:\n{exc}", file=sys.stderr)
        raise SystemExit(1) from exc


def decide(matcher, text: str):  # type: ignore[no-untyped-def]
    """The decision for one line, as the dialogue would take it (commands included)."""
    from bot.matching import Decision

    stripped = text.strip()
    if stripped.split(maxsplit=1)[:1] == ["/phone"]:
        return Decision("contacts", topic="phone_contacts")
    return matcher.decide(stripped)


def decision_json(text: str, d) -> dict:  # type: ignore[no-untyped-def]
    from bot.evaluation import decision_topic

    return {
        "text": text,
        "outcome": d.outcome,
        "faq_id": d.faq_id,
        "flow_id": d.flow_id,
        "topic": decision_topic(d),
        "score": d.score,
        "candidates": [{"faq_id": c.target_id, "topic": c.topic, "score": c.score} for c in d.candidates],
        "rule": d.rule,
        "topics": [{"topic": t, "probability": p} for t, p in d.topics],
        "phrasing": d.phrasing,
        "shared": list(d.shared),
    }


def _readable_stdin() -> None:
    """Bytes that are not UTF-8 become U+FFFD instead of an error (or, in a C locale, surrogates
    that would be written back out raw and make the output invalid UTF-8 and invalid JSON)."""
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")


def _cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from bot.messages import valid_text

    matcher = _load_matcher(settings)
    _readable_stdin()
    # Arguments with bytes that are not UTF-8 arrive as surrogates (PEP 383).
    texts = [valid_text(" ".join(args.text))] if args.text else [line.rstrip("\n") for line in sys.stdin]
    for text in texts:
        d = decide(matcher, text)
        if args.json:
            print(json.dumps(decision_json(text, d), ensure_ascii=False), flush=True)
            continue
        print(f"text:      {text}")
        print(f"outcome:   {d.outcome}")
        print(f"entry:     {d.target_id or '-'} ({d.kind or '-'})")
        print(f"topic:     {d.topic or '-'}")
        print(f"score:     {d.score}")
        print(f"rule:      {d.rule}")
        if d.topics:
            print("classifier: " + ", ".join(f"{t} {p:.0%}" for t, p in d.topics))
        if d.phrasing:
            print(f"phrasing:  {d.phrasing}")
            print(f"shared:    {', '.join(d.shared) or '-'}")
        if d.smalltalk:
            print(f"smalltalk: {d.smalltalk}")
        if d.numbers:
            print(f"numbers:   {', '.join(d.numbers)}")
        print(f"lemmas:    {d.normalized}")
        for c in d.candidates:
            print(f"  {c.score:5.1f}  {c.target_id:<30} {c.topic}")
        if len(texts) > 1:
            print()
    return 0


def _cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from bot.evaluation import cross_validate, format_report, read_rows, score, score_decisions

    matcher = _load_matcher(settings)
    rows = read_rows(args.file)
    if args.cv:
        if args.cv < 2 or args.cv > len(rows):
            print(f"--cv takes a number of folds from 2 to the number of rows ({len(rows)})", file=sys.stderr)
            return 2
        report = score_decisions(rows, cross_validate(rows, matcher.knowledge, args.cv, seed=args.seed))
    else:
        report = score(rows, lambda text: decide(matcher, text))
    if args.json:
        out = report.summary()
        out["per_topic"] = {t: vars(s) for t, s in sorted(report.per_topic.items())}  # type: ignore[assignment]
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
    if args.mistakes:
        print("\nmistakes (text | expected | outcome | topic):")
        for text, expected, outcome, topic in report.mistakes:
            print(f"  {text[:90]} | {expected} | {outcome} | {topic}")
    return 0


# -- conversations and staff --------------------------------------------------------------------


async def open_core(settings: Settings):  # type: ignore[no-untyped-def]
    """The composition root for everything that talks: knowledge, store, dialogue."""
    from bot.dialogue import Dialogue, KnowledgeSource
    from bot.knowledge import KnowledgeError
    from bot.storage import store_for

    try:
        source = KnowledgeSource(settings.knowledge)
    except KnowledgeError as exc:
        print(f"the knowledge in {settings.knowledge} has problems; run `gosbot check`:\n{exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    store = store_for(settings)
    await store.open()
    return Dialogue(source, store)


def _cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console import Console, stdin_lines

    _readable_stdin()

    async def run() -> None:
        dialogue = await open_core(settings)
        try:
            interactive = sys.stdin.isatty()
            await Console(dialogue, args.chat).run(stdin_lines(interactive), interactive)
        finally:
            await dialogue.store.close()

    asyncio.run(run())
    return 0


def _cmd_tickets(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeError, load_knowledge
    from bot.storage import SqliteStore
    from bot.tickets import Desk, TicketError, ticket_card, ticket_label

    try:
        # Staff commands need the texts and topics, not the trained matcher (seconds saved per command).
        knowledge = load_knowledge(settings.knowledge)
    except KnowledgeError as exc:
        print(f"the knowledge in {settings.knowledge} has problems; run `gosbot check`:\n{exc}", file=sys.stderr)
        return 1

    async def run() -> int:
        store = SqliteStore(settings.db, busy_timeout=settings.db_busy_timeout)
        await store.open()
        desk = Desk(store, lambda: knowledge)
        try:
            if args.action == "list":
                import time

                tickets = await store.list_tickets(args.status, overdue_at=time.time() if args.overdue else None)
                if args.json:
                    for t in tickets:
                        messages = await store.ticket_messages(t.number)
                        print(json.dumps(_ticket_json(t, messages), ensure_ascii=False))
                else:
                    print(desk_table(tickets, knowledge) if tickets else "Обращений нет.")
                return 0
            if args.action == "show":
                view = await desk.view(args.number)
                if args.json:
                    print(json.dumps(_ticket_json(view.ticket, view.messages), ensure_ascii=False, indent=2))
                else:
                    print(ticket_card(view.ticket, view.messages, knowledge))
                return 0
            label = ticket_label(args.number)
            if args.action == "take":
                before = await desk.get(args.number)
                holder = before.operator if before.status == "taken" and before.operator != args.operator else None
                try:
                    t = await desk.take(args.number, args.operator, force=args.force)
                except TicketError as exc:
                    raise TicketError(f"{exc}; чтобы забрать его себе, добавьте --force") from exc
                print(f"Обращение {label} ведёт {t.operator}" + (f" (раньше вёл(а) {holder})" if holder else ""))
            elif args.action == "reply":
                t = await desk.reply(args.number, " ".join(args.text), args.operator)
                print(f"Ответ по обращению {label} отправлен гражданину, подпись: {desk.signer(t, args.operator)}")
            elif args.action == "note":
                t = await desk.note(args.number, " ".join(args.text), args.operator)
                print(f"Заметка к обращению {label} сохранена, подпись: {desk.signer(t, args.operator)}")
            elif args.action == "close":
                t = await desk.close(args.number, args.operator)
                print(
                    f"Обращение {label} закрыто, подпись: {desk.signer(t, args.operator)}; гражданина попросили оценить помощь"
                )
            return 0
        except TicketError as exc:
            print(f"gosbot tickets: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.close()

    return asyncio.run(run())


def desk_table(tickets, k) -> str:  # type: ignore[no-untyped-def]
    """`tickets list` for people: a header, Russian statuses, topic titles and who holds each ticket."""
    from bot.tickets import format_time, status_name, topic_title

    rows = [("№", "срочно", "статус", "ведёт", "тема", "откуда", "ответить до")]
    for t in tickets:
        rows.append(
            (
                str(t.number),
                "да" if t.priority == "urgent" else "",
                status_name(t.status),
                t.operator or "—",
                topic_title(t.topic, k),
                f"{t.platform}:{t.chat_id}",
                format_time(t.due_at),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _ticket_json(t, messages) -> dict:  # type: ignore[no-untyped-def]
    return {
        "number": t.number,
        "status": t.status,
        "priority": t.priority,
        "topic": t.topic,
        "platform": t.platform,
        "chat_id": t.chat_id,
        "user_name": t.user_name,
        "operator": t.operator,
        "created_at": t.created_at,
        "due_at": t.due_at,
        "closed_at": t.closed_at,
        "rating": t.rating,
        "reason": t.reason,
        "steps_tried": t.steps_tried,
        "candidates": t.candidates,
        "transcript": [{"role": m.role, "text": m.text, "author": m.author, "at": m.at} for m in messages],
    }


def _cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from bot.storage import store_for

    async def run() -> None:
        store = store_for(settings)
        await store.open()
        try:
            groups = await store.unanswered(time.time() - args.days * 86400, args.limit)
        finally:
            await store.close()
        if args.tsv:
            print("text\ttopic\tcount\toutcome")
            for g in groups:
                text = _shorten(" ".join(g.example.split()), 500)
                print(f"{text}\t\t{g.count}\t{g.outcomes}")
            return
        if not groups:
            print(f"no unanswered questions in the last {args.days} days")
        for g in groups:
            print(f"{g.count:>5}  {_shorten(g.normalized or '(пусто)', 100)}\n       e.g. {_shorten(g.example, 100)}")

    asyncio.run(run())
    return 0


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cmd_examples(args: argparse.Namespace, settings: Settings) -> int:
    from bot.examples import merge
    from bot.knowledge import KnowledgeError, knowledge_files, load_knowledge, read_texts

    directory = Path(args.dir) if args.dir else settings.knowledge
    try:
        knowledge = load_knowledge(directory)
    except KnowledgeError as exc:
        print(f"the knowledge in {directory} has problems; run `gosbot check`:\n{exc}", file=sys.stderr)
        return 1
    before = read_texts(directory)
    report = merge(Path(args.file), directory, knowledge)
    for error in report.errors:
        print(error, file=sys.stderr)
    if report.errors:
        print("nothing merged: fix the labels above and run again", file=sys.stderr)
        return 1
    try:
        load_knowledge(directory)
    except KnowledgeError as exc:
        # The files were not as the merge expects (hand-edited layout): put them back as they were.
        for name in knowledge_files(directory):
            path = directory / name
            if name in before:
                path.write_text(before[name], encoding="utf-8")
            elif path.exists():
                path.unlink()
        print(f"merging would break the examples files, nothing changed:\n{exc}", file=sys.stderr)
        return 1
    for label, count in sorted(report.added.items()):
        print(f"{count:>5}  added to {label}")
    print(f"{sum(report.added.values())} added, {report.duplicates} already there, {report.unlabelled} without a topic")
    return 0


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.storage import PostgresStore, SqliteStore, store_for

    async def run() -> int:
        store = store_for(settings)
        if not isinstance(store, SqliteStore | PostgresStore):
            raise TypeError(store)
        await store.open()  # opening applies what is missing
        try:
            version = await store.schema_version()
        finally:
            await store.close()
        where = "PostgreSQL" if isinstance(store, PostgresStore) else str(settings.db)
        print(f"{where}: schema version {version}")
        return 0

    return asyncio.run(run())


def _cmd_copy_db(args: argparse.Namespace, settings: Settings) -> int:
    from bot.storage.copy import CopyError, copy_sqlite_to_postgres

    source = Path(args.sqlite_file)
    if not source.is_file():
        print(f"{source}: no such SQLite file", file=sys.stderr)
        return 1
    try:
        counts = asyncio.run(copy_sqlite_to_postgres(source, args.postgres_url))
    except CopyError as exc:
        print(f"copy-db: {exc}", file=sys.stderr)
        return 1
    print("copied: " + ", ".join(f"{table} {n}" for table, n in counts.items()))
    print("now set GOSBOT_DATABASE_URL to the PostgreSQL URL and start the bot again")
    return 0


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.telegram_token and not settings.vk_group_token:
        print("No TELEGRAM_BOT_TOKEN or VK_GROUP_TOKEN set: starting the terminal chat.", file=sys.stderr)
        return _cmd_chat(argparse.Namespace(chat="local"), settings)
    problems = settings.problems()
    if problems:  # fail closed: never serve a front end that would accept forged requests
        for problem in problems:
            print(f"gosbot run: {problem}", file=sys.stderr)
        return 2
    from adapters.runner import run_platforms
    from bot.logs import configure

    configure(settings.log_level, settings.log_format)
    return asyncio.run(run_platforms(settings))


# -- personal data -----------------------------------------------------------------------------


def _cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    from bot.retention import forget
    from bot.storage import store_for

    async def run() -> dict[str, int]:
        store = store_for(settings)
        await store.open()
        try:
            return await forget(store, args.platform, args.chat)
        finally:
            await store.close()

    counts = asyncio.run(run())
    for kind, count in counts.items():
        print(f"{count:>6}  {kind}")
    if not any(counts.values()):
        print(f"nothing stored for {args.platform} chat {args.chat}")
    else:
        print(f"{args.platform} chat {args.chat} forgotten; its tickets keep their number and status only")
    return 0


def _cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from bot.retention import audit

    path = Path(args.db) if args.db else settings.db
    if not path.is_file():
        print(f"{path}: no such database", file=sys.stderr)
        return 2
    findings = audit(path)
    for f in findings:
        print(f"{f.table}\trow {f.rowid}\t{f.column}\t{f.category}\t{f.hint}")
    print(f"{len(findings)} value(s) that look like personal data in {path}", file=sys.stderr)
    return 1 if findings else 0


_COMMANDS = {
    "chat": _cmd_chat,
    "tickets": _cmd_tickets,
    "stats": _cmd_stats,
    "examples": _cmd_examples,
    "run": _cmd_run,
    "check": _cmd_check,
    "ask": _cmd_ask,
    "eval": _cmd_eval,
    "forget": _cmd_forget,
    "audit": _cmd_audit,
    "migrate": _cmd_migrate,
    "copy-db": _cmd_copy_db,
}


if __name__ == "__main__":
    raise SystemExit(main())
