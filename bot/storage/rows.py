"""Rows to records, shared by the SQL stores (sqlite3.Row and asyncpg.Record both index by name)."""

from __future__ import annotations

import json
from typing import Any, Protocol

from bot.records import OutboxItem, Ticket, reply_from_json, reply_to_json

TICKET_COLUMNS = (
    "number, platform, chat_id, topic, priority, status, created_at, due_at, user_id, user_name, reason, "
    "operator, closed_at, rating, steps_tried, candidates, desk_ref, overdue_announced"
)


class Row(Protocol):
    """A row indexed by column name: sqlite3.Row, asyncpg.Record."""

    def __getitem__(self, key: str, /) -> Any: ...


OUTBOX_COLUMNS = "platform, chat_id, reply, ticket, event, attempts, next_at, status, error, created_at"


def ticket_from_row(row: Row) -> Ticket:
    return Ticket(
        number=row["number"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        topic=row["topic"],
        priority=row["priority"],
        status=row["status"],
        created_at=row["created_at"],
        due_at=row["due_at"],
        user_id=row["user_id"],
        user_name=row["user_name"],
        reason=row["reason"],
        operator=row["operator"],
        closed_at=row["closed_at"],
        rating=row["rating"],
        steps_tried=json.loads(row["steps_tried"]),
        candidates=json.loads(row["candidates"]),
        desk_ref=row["desk_ref"],
        overdue_announced=bool(row["overdue_announced"]),
    )


def ticket_values(t: Ticket) -> tuple[Any, ...]:
    """The columns of TICKET_COLUMNS after `number`, in order."""
    return (
        t.platform,
        t.chat_id,
        t.topic,
        t.priority,
        t.status,
        t.created_at,
        t.due_at,
        t.user_id,
        t.user_name,
        t.reason,
        t.operator,
        t.closed_at,
        t.rating,
        json.dumps(t.steps_tried, ensure_ascii=False),
        json.dumps(t.candidates, ensure_ascii=False),
        t.desk_ref,
        int(t.overdue_announced),
    )


def ticket_update_values(t: Ticket) -> tuple[Any, ...]:
    """For TICKET_UPDATE's placeholders, in order (the number last)."""
    return (
        t.topic,
        t.priority,
        t.status,
        t.due_at,
        t.operator,
        t.closed_at,
        t.rating,
        json.dumps(t.steps_tried, ensure_ascii=False),
        json.dumps(t.candidates, ensure_ascii=False),
        t.desk_ref,
        int(t.overdue_announced),
        t.user_name,
        t.number,
    )


TICKET_UPDATE_COLUMNS = (
    "topic", "priority", "status", "due_at", "operator", "closed_at", "rating",
    "steps_tried", "candidates", "desk_ref", "overdue_announced", "user_name",
)  # fmt: skip


def outbox_from_row(row: Row) -> OutboxItem:
    return OutboxItem(
        platform=row["platform"],
        chat_id=row["chat_id"],
        reply=reply_from_json(row["reply"]),
        ticket=row["ticket"],
        event=row["event"],
        id=row["id"],
        attempts=row["attempts"],
        next_at=row["next_at"],
        status=row["status"],
        error=row["error"],
        created_at=row["created_at"],
    )


def outbox_values(item: OutboxItem) -> tuple[Any, ...]:
    """The columns of OUTBOX_COLUMNS, in order."""
    return (
        item.platform,
        item.chat_id,
        reply_to_json(item.reply),
        item.ticket,
        item.event,
        item.attempts,
        item.next_at,
        item.status,
        item.error,
        item.created_at,
    )
