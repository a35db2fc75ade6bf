"""The public face of the file engine: cache, adopt, evict, recover.

`Engine` puts together its three halves, each in its own module: caching and adopting
(caching.py), the sidecars that travel with a video (sidecar_flow.py), and eviction
(eviction.py). What they share (the journal, the guards, one transfer per disk, settling
an interrupted action) is here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from cacherr.config.model import CacheConfig, HostConfig, SymlinkLayout, UnionLayout
from cacherr.engine import guards, paths
from cacherr.engine.actions import Action, Result
from cacherr.engine.caching import Caching
from cacherr.engine.checkpoints import Checkpoints
from cacherr.engine.copy import DEFAULT_CHUNK_BYTES, CopyOptions
from cacherr.engine.errors import Refused
from cacherr.engine.eviction import Eviction
from cacherr.engine.journal import Journal
from cacherr.engine.recovery import RecoveredAction, recover_all, recover_entry
from cacherr.engine.safety import Guards
from cacherr.engine.sidecar_flow import SidecarFlow
from cacherr.engine.sidecars import POLICIES
from cacherr.engine.steps import Context
from cacherr.engine.table import ROWS
from cacherr.state.ledger import Ledger

log = logging.getLogger(__name__)

JOURNAL_KEEP_SECONDS = 7 * 86400  # finished actions stay this long, for debugging

__all__ = ["Engine", "MoverListing", "Result"]


class MoverListing(Protocol):
    """The mover exclusion file (cacherr.cycle.moverlist.MoverList): the engine lists
    sidecars itself, since the cycle only knows their videos."""

    def add(self, fast_path: str | Path) -> None: ...

    def remove(self, fast_path: str | Path) -> None: ...


class Engine(Caching, SidecarFlow, Eviction):
    """Carry out cache, adopt and evict actions for one layout row, journalled and recoverable.

    Given the ledger (whose database also holds the journal), the layout (`union` with a
    UnionLayout, or `symlink` with a SymlinkLayout and the host `roots` that hold the
    originals), the `original` policy for new caches, the `sidecars` policy, and the copy
    settings. `cancel` is checked between chunks (set it from a SIGTERM handler);
    `progress(done, total)` is called after each chunk; `session_check(relative_path)`
    returns True while a player reads the file (asked again before each destructive
    step); `throttle(size_bytes)` paces each chunk (a shared BandwidthLimiter for
    `cache.bandwidth`). With `host`, no new transfer starts while the Unraid mover or a
    parity check runs (Held), and a pool the share does not use is refused. `branch_locks`
    allow one transfer per slow branch at a time, `file_claims` one action per file (both
    shared by the whole process by default); copies run at idle I/O priority.
    `mover_list` (settable later) receives the sidecars' fast paths before their copies
    and loses them after their eviction.

    Call `recover()` at start-up, before any action. One Engine per thread, each with its
    own Ledger connection (SQLite connections stay in their thread); they share the
    database and its journal safely.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        layout: str,
        original: str,
        union: UnionLayout | None = None,
        symlink: SymlinkLayout | None = None,
        roots: Sequence[Path] = (),
        verify: str = "size",
        min_free_bytes: int = 0,
        chunk_size_bytes: int = DEFAULT_CHUNK_BYTES,
        sidecars: str = "none",
        host: HostConfig | None = None,
        branch_locks: guards.BranchLocks | None = None,
        file_claims: guards.FileClaims | None = None,
        mover_list: MoverListing | None = None,
        cancel: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
        throttle: Callable[[int], None] | None = None,
        session_check: Callable[[str], bool] | None = None,
        checkpoints: Checkpoints | None = None,
    ):
        if layout == "union" and union is None or layout == "symlink" and symlink is None:
            raise ValueError(f"layout {layout!r} needs its layout block")
        if verify not in ("size", "checksum"):
            raise ValueError(f"verify must be size or checksum, not {verify!r}")
        if sidecars not in POLICIES:
            raise ValueError(f"sidecars must be one of {', '.join(POLICIES)}, not {sidecars!r}")
        self.ledger = ledger
        self.layout, self.original = layout, original
        self.union, self.symlink = union, symlink
        self.roots = tuple(Path(root) for root in roots)
        self.min_free_bytes = min_free_bytes
        self.sidecars = sidecars
        self.host = host
        self.branch_locks = branch_locks or guards.PROCESS_BRANCH_LOCKS
        self.file_claims = file_claims or guards.PROCESS_FILE_CLAIMS
        self.mover_list = mover_list
        self.cancel = cancel if cancel is not None else threading.Event()
        self.checkpoints = checkpoints or Checkpoints.from_environ(os.environ)
        self.journal = Journal(ledger, self.checkpoints)
        self.context = Context(
            journal=self.journal,
            checkpoints=self.checkpoints,
            copy_options=CopyOptions(
                verify, chunk_size_bytes, self.cancel, progress, throttle, self.checkpoints
            ),
            guards=Guards(session_check, self._view_serves),
        )

    @classmethod
    def from_config(
        cls,
        ledger: Ledger,
        cache: CacheConfig,
        *,
        roots: Sequence[Path] = (),
        host: HostConfig | None = None,
        **hooks,
    ) -> Engine:
        """Given the `cache:` block (and, for the symlink layout, the host roots; `host`
        for the Unraid guards), build one."""
        fast = cache.union.fast if cache.union else cache.symlink.dir  # type: ignore[union-attr]
        st = os.statvfs(fast)
        return cls(
            ledger,
            layout=cache.layout,
            original=cache.original,
            union=cache.union,
            symlink=cache.symlink,
            roots=roots,
            verify=cache.verify,
            min_free_bytes=cache.min_free.bytes_of(st.f_blocks * st.f_frsize),
            sidecars=cache.sidecars,
            host=host,
            **hooks,
        )

    def fast_free_bytes(self) -> int:
        """Free bytes on the fast file system (statvfs of the fast branch or cache dir only)."""
        return paths.free_bytes(Path(self._fast_root()))

    # -- the three actions and recovery ----------------------------------------------

    def recover(self) -> list[RecoveredAction]:
        """Finish or roll back every interrupted action; return what was decided (state
        `pending` for one whose branches are not mounted: it waits, and actions on its
        file are refused until a later recovery settles it).

        Also forget journal entries of actions that finished over a week ago.
        """
        recovered = recover_all(self.journal, self.ledger)
        self.journal.prune(time.time() - JOURNAL_KEEP_SECONDS)
        return recovered

    def settle_waiting(self) -> list[RecoveredAction]:
        """Try again the interrupted actions that wait for their branches (a disk or pool
        that was not mounted), each under its file's claim; return what each is now
        (`pending` still, or settled). For a service between transfers: an action of
        this engine in progress would be taken for an interrupted one."""
        results = []
        for entry in self.journal.unfinished():
            with self.file_claims.claimed(entry.action.relative_path):
                results.append(recover_entry(self.journal, self.ledger, entry))
        return results

    def cache(self, relative_path: str, *, root: Path | None = None) -> Result:
        """Given a share-relative (union) or root-relative (symlink) path, cache the file
        and its sidecars.

        Return a Result; raise Held (a guard holds new transfers), Refused (nothing
        changed; NameRefused for a name cacherr refuses), NoSpace, SourceChanged, InUse,
        Cancelled or CopyFailed (the partial copy removed, the original untouched). A
        sidecar that cannot come along is named in the Result's detail; the video stays
        cached.
        """
        parts = paths.split_relative(relative_path)
        if (self.layout, self.original) not in ROWS:
            raise Refused(relative_path, f"{self.layout}/{self.original} is not supported")
        with self.file_claims.claimed(relative_path):
            return self._cache(relative_path, parts, root)

    def adopt(self, relative_path: str, *, root: Path | None = None) -> Result:
        """Given a wanted file that already sits on the fast branch (union layout), record
        it without any copy: kind `adopted`, with its slow copy if one exists. Its sidecars
        are adopted too when on the fast branch, else cached. Raise Refused if it is not
        on the fast branch, is in the ledger already, or the layout is symlink.
        """
        parts = paths.split_relative(relative_path)
        if self.layout != "union" or self.union is None:
            raise Refused(relative_path, "only the union layout adopts files already cached")
        with self.file_claims.claimed(relative_path):
            return self._adopt(relative_path, parts)

    def evict(self, relative_path: str) -> Result:
        """Given a ledger entry's path, put the file back as the ledger says it was cached
        (adopted files: released, or moved back under `original: move`), together with
        the sidecars no other cached video references: those first, so that a crash in
        between leaves a video with fewer sidecars, never a sidecar without its video.

        Return a Result (`untracked` when a copy changed under cacherr: nothing deleted);
        raise Held, Refused (not cached, a sidecar still needed, a branch not mounted, an
        unsafe setup), NoSpace (no slow branch can take it back), InUse (a player reads
        it or its sidecar), or an OSError-derived EngineError after rolling the partial
        step back. If a sidecar cannot go, the video stays too.
        """
        parts = paths.split_relative(relative_path, names=False)  # whatever it holds goes back
        with self.file_claims.claimed(relative_path):
            return self._evict(relative_path, parts)

    # -- shared by the halves --------------------------------------------------------

    def _fast_root(self) -> str:
        return str(self.union.fast if self.union is not None else self.symlink.dir)  # type: ignore[union-attr]

    @contextlib.contextmanager
    def _transfer(self, slow_branch: str) -> Iterator[None]:
        """One transfer per slow branch at a time, at idle I/O priority."""
        with self.branch_locks.held(slow_branch, self.cancel), guards.idle_io_priority():
            yield

    def _require_settled(self, relative_path: str) -> None:
        """Settle an interrupted action on this file now if its branches are back; raise
        Refused while one still waits for them."""
        for entry in self.journal.unfinished(relative_path):
            recovered = recover_entry(self.journal, self.ledger, entry)
            if recovered.state == "pending":
                raise Refused(
                    relative_path, f"an interrupted action waits for recovery: {recovered.outcome}"
                )

    def _undo(self, action_id: int) -> None:
        """After a failure, settle the action from the disks as start-up recovery would."""
        for entry in self.journal.unfinished():
            if entry.action_id == action_id:
                try:
                    recover_entry(self.journal, self.ledger, entry)
                except Exception:  # the next start-up recovery retries
                    log.exception("could not settle action %d now", action_id)

    def _list(self, fast_path: Path) -> None:
        if self.mover_list is not None:
            self.mover_list.add(fast_path)

    def _unlist(self, fast_path: Path) -> None:
        if self.mover_list is not None:
            self.mover_list.remove(fast_path)

    def _view_serves(self, action: Action) -> bool | None:
        """Ask the merged view which branch serves the file (mergerfs, then shfs): True
        if the fast copy, False if another one or none (ENOENT), None if it cannot tell."""
        if self.union is None or self.union.view is None or action.layout != "union":
            return None
        through_view = Path(self.union.view) / action.relative_path
        for name in ("user.mergerfs.fullpath", "system.LOCATION"):
            try:
                value = os.fsdecode(os.getxattr(through_view, name, follow_symlinks=False))
            except FileNotFoundError:
                return False
            except OSError:
                continue
            if name == "user.mergerfs.fullpath":
                return value == str(action.fast_path)
            return value.strip("\0") == Path(action.fast_branch).name
        return None
