"""Whether any process on this host has a file open, from /proc/<pid>/fd (allow-listed:
cacherr only reads the links there, never the processes' files)."""

from __future__ import annotations

import os
from pathlib import Path

PROC = "/proc"


def open_by_any_process(path: str | Path, proc: str = PROC) -> bool | None:
    """True if a process has `path` open, False if none has, None when that cannot be
    known (no /proc, or some process's descriptors could not be read, e.g. not root)."""
    try:
        target = os.stat(path)
    except OSError:
        return False
    try:
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return None
    unknown = False
    for pid in pids:
        folder = os.path.join(proc, pid, "fd")
        try:
            descriptors = os.listdir(folder)
        except FileNotFoundError:
            continue  # it exited meanwhile
        except OSError:
            unknown = True
            continue
        for descriptor in descriptors:
            try:
                seen = os.stat(os.path.join(folder, descriptor))
            except OSError:
                continue
            if (seen.st_dev, seen.st_ino) == (target.st_dev, target.st_ino):
                return True
    return None if unknown else False
