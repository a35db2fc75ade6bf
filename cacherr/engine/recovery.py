"""Start-up recovery: finish or roll back every action a crash interrupted.

First the branches the action involves must be there (mounted, with the share's
top-level folder): otherwise a missing disk would look like a vanished file, so the
action stays pending and is reported. Then every folder the action renamed in is
fsynced, so that what recovery sees is what a power cut would leave, before it unlinks
anything on the other device or settles the action. Each row then decides from what is
on the disks (temporary names, which copies exist and are cacherr's own); the journal
says which actions to look at, what they planned and what each step measured. Running
it again changes nothing more.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from cacherr.engine import paths
from cacherr.engine.actions import Action
from cacherr.engine.errors import Refused
from cacherr.engine.journal import Journal, JournalEntry
from cacherr.engine.rows import Decision
from cacherr.engine.safety import Known
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
    state: str  # done | aborted | pending (its branches are not there: decided later)
    outcome: str


def cached_entry(
    action: Action, fast: FileIdentity, slow: FileIdentity | None = None
) -> CachedFile:
    """The ledger entry of a finished cache action (what eviction will follow); `slow`:
    the original's (or backup's) identity if a rename or link changed it."""
    return CachedFile(
        relative_path=action.relative_path,
        layout=action.layout,
        original=action.original,
        kind="cached",
        fast_branch=action.fast_branch,
        fast=fast,
        slow_branch=action.slow_branch,
        slow=slow or action.slow,
        backup_name=action.backup_name,
        sidecar_of=action.sidecar_of,
        cached_at=time.time(),
        link_target=action.link_target,
    )


def settle(
    journal: Journal, ledger: Ledger, action_id: int, action: Action, decision: Decision
) -> None:
    """Apply a decision: the ledger change and the end of the action, in one transaction."""

    def ledger_change() -> None:
        if action.kind == "cache" and decision.state == "done" and decision.fast is not None:
            ledger.record(cached_entry(action, decision.fast, decision.slow))
            if action.sidecar_of is not None:
                ledger.refer_sidecar(action.relative_path, action.sidecar_of)
        elif decision.untrack or (action.kind == "evict" and decision.state == "done"):
            ledger.forget(action.relative_path)
        size = action.slow.size_bytes
        ledger.log_operation(action.kind, action.relative_path, decision.outcome, size)

    journal.finish(action_id, decision.state, decision.outcome, ledger_change)


def require_branches(action: Action) -> None:
    """Raise Refused unless every branch the action involves is there: the fast branch
    (or cache folder) mounted, the slow branch a folder, and in the union layout the
    share's top-level folder on both."""
    share = action.relative_path.split("/")[0]
    if action.layout == "union":
        paths.require_fast_branch(Path(action.fast_branch), share)
        paths.require_slow_branch(Path(action.slow_branch), share)
    else:
        paths.require_cache_dir(Path(action.fast_branch))
        paths.require_slow_branch(Path(action.slow_branch), None)


def sync_folders(action: Action) -> None:
    """fsync the folders the action renamed or unlinked in, on both sides, so recovery
    acts on what a power cut would leave."""
    for folder in {action.fast_path.parent, action.slow_path.parent}:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            paths.fsync_folder(folder)


def recover_entry(journal: Journal, ledger: Ledger, entry: JournalEntry) -> RecoveredAction:
    """Decide one interrupted action from the disks and settle it; an action whose
    branches are not there stays pending (state `pending`), changing nothing."""
    action = entry.action
    try:
        require_branches(action)
    except Refused as missing:
        log.warning(
            "recovery of %s of %s waits: %s", action.kind, action.relative_path, missing
        )
        return RecoveredAction(
            entry.action_id, action.kind, action.layout, action.original,
            action.relative_path, "pending", f"waiting: {missing}",
        )  # fmt: skip
    sync_folders(action)
    row = ROWS[(action.layout, action.original)]
    decide = row.recover_cache if action.kind == "cache" else row.recover_evict
    decision = decide(action, Known.from_values(entry.values))
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
    """Given the journal, settle every unfinished action, oldest first; return what was
    decided (pending ones included: they wait for their branches)."""
    return [recover_entry(journal, ledger, entry) for entry in journal.unfinished()]
