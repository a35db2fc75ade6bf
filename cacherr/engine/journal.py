"""The journal: actions and their durable steps, in the state database beside the ledger.

Every write commits at once (the connection autocommits, `synchronous=FULL`), so a step
recorded here is on disk before the next disk operation starts. `finish` commits the
ledger change and the end of the action in one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cacherr.engine.actions import Action
from cacherr.engine.checkpoints import Checkpoints
from cacherr.state.ledger import Ledger


@dataclass(frozen=True)
class JournalEntry:
    action_id: int
    action: Action
    steps: tuple[str, ...]
    started_at: float
    values: dict[str, Any] = field(default_factory=dict)  # what the steps measured, merged


class Journal:
    """Record and read the engine's actions in `ledger`'s database."""

    def __init__(self, ledger: Ledger, checkpoints: Checkpoints):
        self.ledger = ledger
        self.conn = ledger.conn
        self.checkpoints = checkpoints

    def begin(self, action: Action) -> int:
        """Record `action` before it starts; return its id."""
        cursor = self.conn.execute(
            "INSERT INTO journal_actions (kind, layout, original, relative_path, plan, started_at)"
            " VALUES (?,?,?,?,?,?)",
            (
                action.kind,
                action.layout,
                action.original,
                action.relative_path,
                action.to_json(),
                time.time(),
            ),
        )
        self.checkpoints.reached("begun")
        return int(cursor.lastrowid)

    def step(self, action_id: int, name: str, value: dict[str, Any] | None = None) -> None:
        """Record that step `name` is durable on disk, with what it measured (`value`:
        plain JSON, e.g. the inode of the copy's temporary file)."""
        self.conn.execute(
            "INSERT OR IGNORE INTO journal_steps (action_id, step, at, value) VALUES (?,?,?,?)",
            (action_id, name, time.time(), None if value is None else json.dumps(value)),
        )
        self.checkpoints.reached(name)

    def finish(
        self,
        action_id: int,
        state: str,
        outcome: str,
        ledger_change: Callable[[], None] | None = None,
    ) -> None:
        """End the action (`done` or `aborted`) and apply `ledger_change`, in one transaction."""
        with self.ledger.transaction():
            if ledger_change is not None:
                ledger_change()
            self.conn.execute(
                "UPDATE journal_actions SET state = ?, outcome = ?, finished_at = ? WHERE id = ?",
                (state, outcome, time.time(), action_id),
            )
        self.checkpoints.reached("finished")

    def unfinished(self, relative_path: str | None = None) -> list[JournalEntry]:
        """The actions still running (interrupted ones, at start-up), oldest first."""
        sql = "SELECT id, plan, started_at FROM journal_actions WHERE state = 'running'"
        params: tuple = ()
        if relative_path is not None:
            sql += " AND relative_path = ?"
            params = (relative_path,)
        entries = []
        for row in self.conn.execute(sql + " ORDER BY id", params).fetchall():
            rows = self.conn.execute(
                "SELECT step, value FROM journal_steps WHERE action_id = ? ORDER BY rowid",
                (row["id"],),
            ).fetchall()
            values: dict[str, Any] = {}
            for step in rows:
                if step["value"] is not None:
                    values.update(json.loads(step["value"]))
            entries.append(
                JournalEntry(
                    row["id"],
                    Action.from_json(row["plan"]),
                    tuple(step["step"] for step in rows),
                    row["started_at"],
                    values,
                )
            )
        return entries

    def prune(self, finished_before: float) -> int:
        """Delete actions that finished before the given time (the ledger's `operations`
        keep the history); return how many. Running actions are never pruned."""
        cursor = self.conn.execute(
            "DELETE FROM journal_actions WHERE state != 'running' AND finished_at < ?",
            (finished_before,),
        )
        return cursor.rowcount

    def outcome(self, action_id: int) -> tuple[str, str]:
        row = self.conn.execute(
            "SELECT state, outcome FROM journal_actions WHERE id = ?", (action_id,)
        ).fetchone()
        return row["state"], row["outcome"]
