"""Start-up recovery: finish or roll back every action a crash interrupted.

Each row decides from what is on the disks (temporary names, which copies exist and
match); the journal says which actions to look at and what they planned. Running it
again changes nothing more.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from cacherr.engine.actions import Action
from cacherr.engine.journal import Journal, JournalEntry
from cacherr.engine.rows import Decision
from cacherr.engine.table import ROWS
from cacherr.state.ledger import CachedFile, FileIdentity, Ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveredAction:
    action_id: int
    kind: str
    layout: str
    original: str
    relative_path: str
    state: str  # done | aborted
    outcome: str


def cached_entry(action: Action, fast: FileIdentity) -> CachedFile:
    """The ledger entry of a finished cache action (what eviction will follow)."""
    return CachedFile(
        relative_path=action.relative_path,
        layout=action.layout,
        original=action.original,
        kind="cached",
        fast_branch=action.fast_branch,
        fast=fast,
        slow_branch=action.slow_branch,
        slow=action.slow,
        backup_name=action.backup_name,
        sidecar_of=action.sidecar_of,
        cached_at=time.time(),
    )


def settle(
    journal: Journal, ledger: Ledger, action_id: int, action: Action, decision: Decision
) -> None:
    """Apply a decision: the ledger change and the end of the action, in one transaction."""

    def ledger_change() -> None:
        if action.kind == "cache" and decision.state == "done" and decision.fast is not None:
            ledger.record(cached_entry(action, decision.fast))
            if action.sidecar_of is not None:
                ledger.refer_sidecar(action.relative_path, action.sidecar_of)
        elif decision.untrack or (action.kind == "evict" and decision.state == "done"):
            ledger.forget(action.relative_path)
        size = action.slow.size_bytes
        ledger.log_operation(action.kind, action.relative_path, decision.outcome, size)

    journal.finish(action_id, decision.state, decision.outcome, ledger_change)


def recover_entry(journal: Journal, ledger: Ledger, entry: JournalEntry) -> RecoveredAction:
    """Decide one interrupted action from the disks and settle it."""
    action = entry.action
    row = ROWS[(action.layout, action.original)]
    decide = row.recover_cache if action.kind == "cache" else row.recover_evict
    decision = decide(action)
    # The disks are settled, the journal not yet: a crash here must lead the next recovery
    # to the same decision (the crash tests kill here).
    journal.checkpoints.reached("recovery-decided")
    settle(journal, ledger, entry.action_id, action, decision)
    log.info(
        "recovered %s of %s (steps done: %s): %s",
        action.kind,
        action.relative_path,
        ", ".join(entry.steps) or "none",
        decision.outcome,
    )
    return RecoveredAction(
        entry.action_id,
        action.kind,
        action.layout,
        action.original,
        action.relative_path,
        decision.state,
        decision.outcome,
    )


def recover_all(journal: Journal, ledger: Ledger) -> list[RecoveredAction]:
    """Given the journal, settle every unfinished action, oldest first; return what was done."""
    return [recover_entry(journal, ledger, entry) for entry in journal.unfinished()]
