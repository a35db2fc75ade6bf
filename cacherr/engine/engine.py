"""The public face of the file engine: cache, evict, recover."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cacherr.config.model import CacheConfig, SymlinkLayout, UnionLayout
from cacherr.engine import paths
from cacherr.engine.actions import Action
from cacherr.engine.checkpoints import Checkpoints
from cacherr.engine.copy import DEFAULT_CHUNK_BYTES, CopyOptions, identity_of
from cacherr.engine.errors import CopyFailed, EngineError, InUse, NoSpace, Refused, SourceChanged
from cacherr.engine.journal import Journal
from cacherr.engine.recovery import RecoveredAction, recover_all, recover_entry, settle
from cacherr.engine.rows import ROWS, Decision
from cacherr.engine.steps import Context
from cacherr.state.ledger import Ledger

log = logging.getLogger(__name__)

JOURNAL_KEEP_SECONDS = 7 * 86400  # finished actions stay this long, for debugging


@dataclass(frozen=True)
class Result:
    """What one action did. `outcome`: cached | evicted | released | untracked."""

    kind: str
    relative_path: str
    outcome: str
    size_bytes: int
    fast_path: Path
    detail: str = ""
    view_serves_fast: bool | None = None  # union: the merged view's own answer, if it gives one


class Engine:
    """Carry out cache and evict actions for one layout row, journalled and recoverable.

    Given the ledger (whose database also holds the journal), the layout (`union` with a
    UnionLayout, or `symlink` with a SymlinkLayout and the host `roots` that hold the
    originals), the `original` policy for new caches, and the copy settings. `cancel` is
    checked between chunks (set it from a SIGTERM handler); `progress(done, total)` is
    called after each chunk; `session_check(relative_path)` returns True while a player
    reads the file; `throttle(size_bytes)` paces each chunk (a shared BandwidthLimiter for
    `cache.bandwidth`). Call `recover()` at start-up, before any action. One Engine per
    thread, each with its own Ledger connection (SQLite connections stay in their thread);
    they share the database and its journal safely.
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
        self.ledger = ledger
        self.layout, self.original = layout, original
        self.union, self.symlink = union, symlink
        self.roots = tuple(Path(root) for root in roots)
        self.min_free_bytes = min_free_bytes
        self.cancel = cancel if cancel is not None else threading.Event()
        self.checkpoints = checkpoints or Checkpoints.from_environ(os.environ)
        self.journal = Journal(ledger, self.checkpoints)
        self.context = Context(
            journal=self.journal,
            checkpoints=self.checkpoints,
            session_check=session_check,
            copy_options=CopyOptions(
                verify, chunk_size_bytes, self.cancel, progress, throttle, self.checkpoints
            ),
        )

    @classmethod
    def from_config(
        cls, ledger: Ledger, cache: CacheConfig, *, roots: Sequence[Path] = (), **hooks
    ) -> Engine:
        """Given the `cache:` block (and, for the symlink layout, the host roots), build one."""
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
            **hooks,
        )

    def fast_free_bytes(self) -> int:
        """Free bytes on the fast file system (statvfs of the fast branch or cache dir only)."""
        fast = self.union.fast if self.union is not None else self.symlink.dir  # type: ignore[union-attr]
        return paths.free_bytes(Path(fast))

    # -- recovery ------------------------------------------------------------------

    def recover(self) -> list[RecoveredAction]:
        """Finish or roll back every interrupted action; return what was decided.

        Also forget journal entries of actions that finished over a week ago.
        """
        recovered = recover_all(self.journal, self.ledger)
        self.journal.prune(time.time() - JOURNAL_KEEP_SECONDS)
        return recovered

    # -- cache -------------------------------------------------------------------

    def cache(self, relative_path: str, *, root: Path | None = None) -> Result:
        """Given a share-relative (union) or root-relative (symlink) path, cache the file.

        Return a Result; raise Refused (nothing changed), NoSpace, SourceChanged,
        Cancelled or CopyFailed (the partial copy removed, the original untouched).
        """
        parts = paths.split_relative(relative_path)
        row = ROWS.get((self.layout, self.original))
        if row is None:
            raise Refused(relative_path, f"{self.layout}/{self.original} is not supported yet")
        self._require_settled(relative_path)
        if self.ledger.get(relative_path) is not None:
            raise Refused(relative_path, "is already in the ledger")
        plan = self._plan_union if self.layout == "union" else self._plan_symlink
        try:
            action = plan(relative_path, parts, root)
            free = paths.free_bytes(Path(action.fast_branch))
        except OSError as error:
            raise Refused(error.filename or relative_path, error.strerror or str(error)) from None
        if free - action.slow.size_bytes < self.min_free_bytes:
            raise NoSpace(
                action.fast_path,
                f"needs {action.slow.size_bytes} bytes and "
                f"min_free {self.min_free_bytes}; {free} bytes free",
            )
        action_id = self.journal.begin(action)
        try:
            fast = row.cache(self.context, action_id, action)
        except OSError as error:
            self._undo(action_id)
            raise _engine_error(error, action.fast_path) from None
        except BaseException:
            self._undo(action_id)
            raise
        settle(self.journal, self.ledger, action_id, action, Decision("done", "cached", fast))
        log.info(
            "cached %s (%d bytes) to %s", relative_path, action.slow.size_bytes, action.fast_path
        )
        serves = self._view_serves(action)
        if serves is False:
            log.warning(
                "the merged view does not serve the fast copy of %s: is %s one of the "
                "share's storages?",
                relative_path,
                action.fast_branch,
            )
        return Result(
            "cache",
            relative_path,
            "cached",
            action.slow.size_bytes,
            action.fast_path,
            view_serves_fast=serves,
        )

    def _plan_union(self, relative_path: str, parts: tuple[str, ...], root: Path | None) -> Action:
        union = self.union
        assert union is not None
        fast = Path(union.fast)
        paths.require_outside(fast, union.view)
        paths.require_fast_branch(fast)
        share_top = fast / parts[0]
        if not share_top.is_dir() or share_top.is_symlink():
            raise Refused(
                share_top,
                "the share has no top-level folder on the fast branch; "
                "cacherr never creates one (is the pool one of the share's storages?)",
            )
        created = paths.walk_folders(fast, parts)
        if os.path.lexists(fast / relative_path):
            raise Refused(fast / relative_path, "already on the fast branch (adopt it instead)")
        for branch in union.slow:
            paths.require_outside(Path(branch), union.view)
            try:
                if paths.walk_folders(Path(branch), parts):
                    continue  # a folder is missing: the file is not on this branch
            except FileNotFoundError:
                continue  # the branch itself is gone (a removed disk)
            st = paths.regular_file(Path(branch) / relative_path)
            if st is None:
                continue
            paths.require_other_device(fast, Path(branch))
            self._require_owner(Path(branch) / relative_path, st)
            return Action(
                "cache",
                "union",
                self.original,
                relative_path,
                str(fast),
                str(branch),
                identity_of(st),
                created_folders=tuple(str(f) for f in created),
            )
        raise Refused(relative_path, "is on none of the slow branches")

    def _plan_symlink(
        self, relative_path: str, parts: tuple[str, ...], root: Path | None
    ) -> Action:
        layout = self.symlink
        assert layout is not None
        cache_dir = Path(layout.dir)
        if root is not None and Path(root) not in self.roots:
            raise Refused(root, "is not one of the configured roots")
        for candidate in [Path(root)] if root is not None else self.roots:
            try:
                if paths.walk_folders(candidate, parts):
                    continue
            except FileNotFoundError:
                continue
            st = paths.regular_file(candidate / relative_path)
            if st is None:
                continue
            original = candidate / relative_path
            if st.st_nlink > 1:
                raise Refused(
                    original,
                    f"has {st.st_nlink} hardlinks (still seeding?); "
                    "the symlink layout skips hardlinked files",
                )
            paths.require_physical(candidate)
            paths.require_cache_dir(cache_dir)
            paths.require_other_device(cache_dir, candidate)
            self._require_owner(original, st)
            created = paths.walk_folders(cache_dir, parts)
            for taken in (
                cache_dir / relative_path,
                paths.backup_path(original),
                paths.link_temp_path(original),
            ):
                if os.path.lexists(taken):
                    raise Refused(taken, "already exists; run doctor to sort it out")
            link_target = layout.plex_dir.rstrip("/") + "/" + relative_path
            return Action(
                "cache",
                "symlink",
                self.original,
                relative_path,
                str(cache_dir),
                str(candidate),
                identity_of(st),
                backup_name=paths.backup_path(original).name,
                link_target=link_target,
                created_folders=tuple(str(f) for f in created),
            )
        raise Refused(relative_path, "is under none of the roots")

    @staticmethod
    def _require_owner(path: Path, st: os.stat_result) -> None:
        if os.geteuid() != 0 and st.st_uid != os.geteuid():
            raise Refused(path, "its owner cannot be kept without root; skipped")

    def _view_serves(self, action: Action) -> bool | None:
        """Ask the merged view which branch serves the file (mergerfs, then shfs)."""
        if self.union is None or self.union.view is None:
            return None
        through_view = Path(self.union.view) / action.relative_path
        try:
            full = os.getxattr(through_view, "user.mergerfs.fullpath", follow_symlinks=False)
            return os.fsdecode(full) == str(action.fast_path)
        except OSError:
            pass
        try:
            location = os.getxattr(through_view, "system.LOCATION", follow_symlinks=False)
            return os.fsdecode(location).strip("\0") == Path(action.fast_branch).name
        except OSError:
            return None

    # -- evict -------------------------------------------------------------------

    def evict(self, relative_path: str) -> Result:
        """Given a ledger entry's path, put the file back as the ledger says it was cached.

        Return a Result (`untracked` when a copy changed under cacherr: nothing deleted);
        raise Refused (not cached, unsafe setup), InUse (a player reads it), or an
        OSError-derived EngineError after rolling the partial step back.
        """
        parts = paths.split_relative(relative_path)
        entry = self.ledger.get(relative_path)
        if entry is None:
            raise Refused(relative_path, "is not in the ledger")
        self._require_settled(relative_path)
        if entry.kind == "adopted" or entry.slow is None or entry.slow_branch is None:
            with self.ledger.transaction():
                self.ledger.forget(relative_path)
                self.ledger.log_operation("evict", relative_path, "released")
            return Result(
                "evict", relative_path, "released", entry.fast.size_bytes, entry.fast_path
            )
        row = ROWS.get((entry.layout, entry.original))
        if row is None:
            raise Refused(relative_path, f"{entry.layout}/{entry.original} is not supported yet")
        try:
            # An unmounted pool would look like a vanished copy; refuse rather than untrack.
            if entry.layout == "union":
                paths.require_fast_branch(Path(entry.fast_branch))
            else:
                paths.require_cache_dir(Path(entry.fast_branch))
            paths.walk_folders(Path(entry.fast_branch), parts)
            paths.walk_folders(Path(entry.slow_branch), parts)
        except OSError as error:
            raise Refused(error.filename or relative_path, error.strerror or str(error)) from None
        action = Action(
            "evict",
            entry.layout,
            entry.original,
            relative_path,
            entry.fast_branch,
            entry.slow_branch,
            entry.slow,
            entry.fast,
            backup_name=entry.backup_name,
        )
        action_id = self.journal.begin(action)
        try:
            row.evict(self.context, action_id, action)
        except SourceChanged as changed:
            decision = Decision("aborted", f"untracked: {changed}", untrack=True)
            settle(self.journal, self.ledger, action_id, action, decision)
            log.warning("untracked %s: %s", relative_path, changed)
            return Result(
                "evict",
                relative_path,
                "untracked",
                entry.fast.size_bytes,
                entry.fast_path,
                detail=str(changed),
            )
        except InUse:
            settle(self.journal, self.ledger, action_id, action, Decision("aborted", "in use"))
            raise
        except OSError as error:
            self._undo(action_id)
            raise _engine_error(error, action.fast_path) from None
        except BaseException:
            self._undo(action_id)
            raise
        settle(self.journal, self.ledger, action_id, action, Decision("done", "evicted"))
        log.info("evicted %s from %s", relative_path, entry.fast_path)
        return Result("evict", relative_path, "evicted", entry.fast.size_bytes, entry.fast_path)

    # -- shared ------------------------------------------------------------------

    def _require_settled(self, relative_path: str) -> None:
        if self.journal.unfinished(relative_path):
            raise Refused(relative_path, "an interrupted action awaits recovery (run recover())")

    def _undo(self, action_id: int) -> None:
        """After a failure, settle the action from the disks as start-up recovery would."""
        for entry in self.journal.unfinished():
            if entry.action_id == action_id:
                try:
                    recover_entry(self.journal, self.ledger, entry)
                except Exception:  # the next start-up recovery retries
                    log.exception("could not settle action %d now", action_id)


def _engine_error(error: OSError, path: Path) -> EngineError:
    """An OSError from a step, as the engine's error naming the file and the reason."""
    if error.errno == errno.ENOSPC:
        return NoSpace(error.filename or path, "the fast file system is full")
    return CopyFailed(error.filename or path, error.strerror or str(error))
