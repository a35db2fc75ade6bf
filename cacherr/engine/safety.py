"""The two rules that every row, every recovery and every eviction goes through.

**Identity** (`own_copy`): a path is cacherr's own copy only if it is a regular file whose
inode is the one the journal or the ledger recorded for it (the copy's temporary file,
whose inode a rename keeps, or the placed copy), with the recorded size and mtime, and the
recorded ctime once one was recorded. Same size and mtime alone prove nothing: the mover
keeps both, and so does a tagger that rewrites bytes in place; two copies that others
made are the same file only if their bytes are (`same_bytes`).

**Order** (`remove_side`): a side goes only after, in this order, the guards (a live
session on the file; for the original, the merged view serving the fast copy), then the
identities of the side that goes and of its counterpart, measured immediately before
the one destructive system call. Anything that does not hold raises before that call.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cacherr.engine.errors import InUse, Refused, SourceChanged
from cacherr.state.ledger import FileIdentity


def measure(path: Path) -> FileIdentity | None:
    """The identity of the regular file at `path` (lstat), or None if absent or not one."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return FileIdentity.of_stat(st) if stat.S_ISREG(st.st_mode) else None


def without_ctime(identity: FileIdentity) -> FileIdentity:
    """The identity to expect after a rename or a new link, which change the ctime."""
    return replace(identity, ctime_ns=None)


@dataclass(frozen=True)
class Known:
    """What the journal recorded about an action's files, step by step (the latest wins).

    `temp_inode`: the copy's temporary file, recorded as soon as it exists; `copy`: the
    copy once placed, measured after its rename; `original`: the original (or its backup)
    measured after cacherr renamed or linked it.
    """

    temp_inode: int | None = None
    copy: FileIdentity | None = None
    original: FileIdentity | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Known:
        """Given a journal entry's merged step values, return what they say."""

        def identity(key: str) -> FileIdentity | None:
            return FileIdentity(**values[key]) if values.get(key) else None

        return cls(values.get("temp_inode"), identity("copy"), identity("original"))


def own_copy(
    path: Path, known: Known, content: FileIdentity, *, renamed_since: bool = False
) -> FileIdentity | None:
    """The identity rule. Given a path, what the journal knows of the action's copy and
    the identity of what was copied (`content`), return the path's identity if it is the
    copy this action made, else None. `renamed_since`: the copy may have been renamed
    after it was measured, so its ctime is not compared.
    """
    measured = measure(path)
    if measured is None:
        return None
    if known.copy is not None:
        expected = without_ctime(known.copy) if renamed_since else known.copy
        return measured if expected.matches(measured) else None
    if known.temp_inode is not None:
        placed = FileIdentity(content.size_bytes, content.mtime_ns, known.temp_inode)
        return measured if placed.matches(measured) else None
    return None


def same_bytes(first: Path, second: Path, chunk_bytes: int = 1024 * 1024) -> bool:
    """True if both are regular files (never through a symlink) holding the same bytes:
    what proves two copies that others made the same file, where size and mtime prove
    nothing (a tagger keeps both). False if either is missing or not a regular file."""
    try:
        with open(first, "rb", opener=_no_follow) as a, open(second, "rb", opener=_no_follow) as b:
            if not (stat.S_ISREG(os.fstat(a.fileno()).st_mode)
                    and stat.S_ISREG(os.fstat(b.fileno()).st_mode)):  # fmt: skip
                return False
            while True:
                block = a.read(chunk_bytes)
                if block != b.read(chunk_bytes):
                    return False
                if not block:
                    return True
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False
    except OSError as error:
        if error.errno == errno.ELOOP:  # a symlink at either name
            return False
        raise


def _no_follow(path: str, flags: int) -> int:
    # Never through a symlink, and never waiting on a FIFO someone put at the name.
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)


def is_our_symlink(path: Path, link_target: str | None) -> bool:
    """True if `path` is a symlink whose text is the one cacherr wrote."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode) and os.readlink(path) == link_target
    except (FileNotFoundError, NotADirectoryError):
        return False


# What a side must be, checked right before a step: a problem (str) or None.
Expectation = Callable[[Path], "str | None"]


def same(identity: FileIdentity) -> Expectation:
    """The recorded file, unchanged (size, mtime, inode, ctime when recorded)."""

    def problem(path: Path) -> str | None:
        measured = measure(path)
        if measured is None:
            return "is missing"
        return None if identity.matches(measured) else "changed since cacherr recorded it"

    return problem


def any_file() -> Expectation:
    """Some complete regular file (the original when a stale copy of it is dropped)."""
    return lambda path: None if measure(path) is not None else "is missing"


def our_symlink(link_target: str | None) -> Expectation:
    """cacherr's own symlink, with the text it wrote."""
    return lambda path: None if is_our_symlink(path, link_target) else "is not cacherr's symlink"


def require(path: Path, expectation: Expectation, what: str) -> None:
    """Raise SourceChanged naming `what` unless `path` meets the expectation."""
    problem = expectation(path)
    if problem is not None:
        raise SourceChanged(path, f"the {what} {problem}")


@dataclass(frozen=True)
class Guards:
    """What is asked before a destructive step: `session_check(relative_path)` is True
    while a player reads the file; `view_serves_fast(action)` says whether the merged view
    serves the fast copy (None: it cannot tell). Recovery runs without guards."""

    session_check: Callable[[str], bool] | None = None
    view_serves_fast: Callable[[Any], bool | None] | None = None


NO_GUARDS = Guards()


def ask_guards(guards: Guards, action: Any, *, view_first: bool = False) -> None:
    """The guards of the order rule: raise InUse while a player reads the file (or the
    video it travels with); with `view_first`, Refused unless the merged view serves the
    fast copy (it cannot tell: go on)."""
    if guards.session_check is not None:
        for path in filter(None, (action.relative_path, action.sidecar_of)):
            if guards.session_check(path):
                raise InUse(
                    action.relative_path, f"a player is reading {path}; {action.kind} it later"
                )
    serves = guards.view_serves_fast
    if view_first and serves is not None and serves(action) is False:
        raise Refused(
            action.relative_path,
            "the merged view does not serve the fast copy (is the pool one of the "
            "share's storages?); the original stays",
        )


def remove_side(
    guards: Guards,
    action: Any,
    *,
    goes: Path,
    goes_as: Expectation,
    stays: Path,
    stays_as: Expectation,
    act: Callable[[], None],
    view_first: bool = False,
) -> None:
    """The order rule. Given the action, the side that goes (`goes`, which must be
    `goes_as`) and its counterpart (`stays`, `stays_as`), and the destructive call `act`:
    ask the guards (`ask_guards`; pass NO_GUARDS where the caller asked them just before
    the step that began the same change), then check both sides, then act. Raise InUse,
    Refused or SourceChanged without acting.
    """
    ask_guards(guards, action, view_first=view_first)
    require(goes, goes_as, "file to be replaced or removed")
    require(stays, stays_as, "counterpart")
    act()
