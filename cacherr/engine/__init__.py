"""The file engine: the only code in cacherr that changes media file systems.

`Engine` (engine.py, with its halves caching.py, sidecar_flow.py and eviction.py) carries
out one action at a time (cache, adopt or evict one file, with its sidecars) for a layout
row of SPEC §4, journalled step by step (journal.py) so that `Engine.recover()` can finish
or roll back anything a crash interrupted (recovery.py). The rules that keep data safe
are in safety.py: `own_copy` (is this path cacherr's own copy?) and `remove_side` (may
this side go now? guards, then identities, then the system call); the name rule is
paths.name_problem. The durable copy is in copy.py, the path and device guards in
paths.py, planning in plans.py, the per-row step sequences in steps.py, rows.py and
rows_backup_move.py (table.py maps each row), sidecar names in sidecars.py, and the
Unraid guards, per-disk locks and I/O priority in guards.py.
"""

from cacherr.engine.bandwidth import BandwidthLimiter
from cacherr.engine.engine import Engine, MoverListing, Result
from cacherr.engine.errors import (
    Cancelled,
    CopyFailed,
    EngineError,
    Held,
    InUse,
    NameRefused,
    NoSpace,
    Refused,
    SourceChanged,
)
from cacherr.engine.recovery import RecoveredAction

__all__ = [
    "BandwidthLimiter",
    "Cancelled",
    "CopyFailed",
    "Engine",
    "EngineError",
    "Held",
    "InUse",
    "MoverListing",
    "NameRefused",
    "NoSpace",
    "RecoveredAction",
    "Refused",
    "Result",
    "SourceChanged",
]
