"""The file engine: the only code in cacherr that changes media file systems.

`Engine` (engine.py) carries out one action at a time (cache or evict one file) for a
layout row of SPEC §4, journalled step by step (journal.py) so that `Engine.recover()`
can finish or roll back anything a crash interrupted (recovery.py). The durable copy is
in copy.py, the path and device guards in paths.py, the per-row step sequences in rows.py.
"""

from cacherr.engine.bandwidth import BandwidthLimiter
from cacherr.engine.engine import Engine, Result
from cacherr.engine.errors import (
    Cancelled,
    CopyFailed,
    EngineError,
    InUse,
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
    "InUse",
    "NoSpace",
    "RecoveredAction",
    "Refused",
    "Result",
    "SourceChanged",
]
