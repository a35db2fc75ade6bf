"""The planner's inputs and outputs: plain, immutable data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cacherr.config.model import Rule, Size
from cacherr.state.ledger import Attribution, CachedFile

# Why an action is skipped or an eviction happens; bounded sets (metrics labels).
SKIP_REASONS = ("no_space", "too_large", "held", "in_session", "cooldown")
EVICT_REASONS = ("released", "pressure", "displaced")


# Where a file without a viewing queue ranks among files of the same priority: after
# what someone is in the middle of (position 0), level with the next item of each queue.
UNQUEUED_POSITION = 1


@dataclass(frozen=True, slots=True)
class Want:
    """One rule wants one file (relative to the branches) for some users.

    `queues` places the file in viewing queues: (queue, position) pairs, where a queue is
    one rule's look-ahead of one user and show (e.g. "ondeck/alice/show:42") and the
    position counts from 0 (in progress) or 1 (next up) towards the far end. The planner
    keeps every queue contiguous: it drops from the far end, never from the middle.
    """

    relative_path: str
    size_bytes: int
    rule: str
    users: frozenset[str]
    priority: int
    queues: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Space:
    """The fast file system now: its size and what is free."""

    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class PlanInput:
    """Everything the planner decides from; the cycle gathers it, the planner reads it.

    `evaluated_rules`: the rules this round evaluated (a partial round names only some).
    `watched`: relative path → user → when that user watched it (for `until: watched`).
    `on_fast`: wanted files that already sit on the fast branch without being in the
    ledger (to adopt). `live`: files in a live session. `failed_rules`: rule → since when
    a source it needs has been failing. `holds`: relative path → held until.
    """

    now: float
    rules: Mapping[str, Rule]
    evaluated_rules: frozenset[str]
    wants: tuple[Want, ...]
    cached: tuple[CachedFile, ...]
    attributions: tuple[Attribution, ...]
    space: Space
    max_size: Size
    min_free: Size
    watched: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    on_fast: frozenset[str] = frozenset()
    live: frozenset[str] = frozenset()
    failed_rules: Mapping[str, float] = field(default_factory=dict)
    source_failure_grace_seconds: float = 86400.0
    holds: Mapping[str, float] = field(default_factory=dict)
    margin_fraction: float = 0.05
    # Files evicted for space (pressure, displaced) → when; they are not cached again
    # for `cooldown_seconds`, so that a file does not bounce between two cycles.
    evicted_for_space: Mapping[str, float] = field(default_factory=dict)
    cooldown_seconds: float = 6 * 3600.0
    # Bytes cacherr holds that the plan does not move by themselves (sidecars, which
    # travel with their videos): they count against max_size.
    reserved_bytes: int = 0


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One thing to do (or not). kind: cache | adopt | evict | skip."""

    kind: str
    relative_path: str
    size_bytes: int
    priority: int
    rules: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    """The actions in the order to carry them out (evictions first), and the totals."""

    actions: tuple[PlannedAction, ...]
    budget_bytes: int  # what cacherr may use: min(max_size, free space above min_free)
    used_bytes: int  # cacherr's files on the fast branch now
    add_bytes: int  # what the plan copies to the fast branch
    free_bytes: int  # what the plan frees on the fast branch

    def of_kind(self, kind: str) -> tuple[PlannedAction, ...]:
        return tuple(action for action in self.actions if action.kind == kind)

    @property
    def moves(self) -> tuple[PlannedAction, ...]:
        """The actions that change something (everything but skips)."""
        return tuple(action for action in self.actions if action.kind != "skip")
