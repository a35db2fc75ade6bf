"""What the engine raises. Every error names the file and the reason, and by the time it
is raised the action has changed nothing visible (a temporary file is already removed)."""

from __future__ import annotations

import errno
from pathlib import Path


class EngineError(Exception):
    """An action did not happen; `path` is the file it was about, `reason` why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class Refused(EngineError):
    """Bad input or an unsafe setup (a path outside the roots, an unmounted pool, ...)."""


class NameRefused(Refused):
    """A file or folder name cacherr refuses (control characters, invalid UTF-8, or a
    character Mover Tuning's list cannot carry): the file is skipped, never cached."""


class SourceChanged(EngineError):
    """The source's size, mtime or inode changed, or it vanished, during the action."""


class NoSpace(EngineError):
    """The fast file system lacks room for the file plus `min_free`, or filled up (ENOSPC)."""


class Cancelled(EngineError):
    """The cancel event was set (SIGTERM); the copy stopped between two chunks."""


class InUse(EngineError):
    """A player is reading the file; a destructive step was not taken."""


class CopyFailed(EngineError):
    """An I/O error (EACCES, EROFS, EIO, a failed verification) stopped the copy."""


class Held(EngineError):
    """No new transfer may start now (invariant 7); the one in progress finishes.

    `reason` is `mover_running` (the Unraid mover's PID file names a live process) or
    `parity_check` (var.ini's mdResyncPos is not 0): the metrics' skip reasons.
    """

    WHY = {
        "mover_running": "the Unraid mover is running",
        "parity_check": "a parity check or rebuild is running",
    }

    def __init__(self, path: str | Path, reason: str):
        super().__init__(path, reason)
        self.args = (
            f"{self.path}: held: {self.WHY.get(reason, reason)}; it starts once that ends",
        )


def from_os_error(error: OSError, path: Path) -> EngineError:
    """An OSError from a step, as the engine's error naming the file and the reason."""
    if error.errno == errno.ENOSPC:
        return NoSpace(error.filename or path, "the fast file system is full")
    return CopyFailed(error.filename or path, error.strerror or str(error))
