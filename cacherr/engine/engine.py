"""The public face of the file engine: cache, adopt, evict, recover."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from cacherr.config.model import CacheConfig, HostConfig, SymlinkLayout, UnionLayout
from cacherr.engine import guards, paths, plans
from cacherr.engine.actions import Action
from cacherr.engine.checkpoints import Checkpoints
from cacherr.engine.copy import DEFAULT_CHUNK_BYTES, CopyOptions, identity_of
from cacherr.engine.errors import (
    CopyFailed,
    EngineError,
    Held,
    NoSpace,
    Refused,
    SourceChanged,
)
from cacherr.engine.journal import Journal
from cacherr.engine.recovery import RecoveredAction, recover_all, recover_entry, settle
from cacherr.engine.rows import Decision
from cacherr.engine.sidecars import POLICIES, sidecar_names
from cacherr.engine.steps import Context
from cacherr.engine.table import ROWS
from cacherr.state.ledger import CachedFile, Ledger

log = logging.getLogger(__name__)

JOURNAL_KEEP_SECONDS = 7 * 86400  # finished actions stay this long, for debugging


class MoverListing(Protocol):
    """The mover exclusion file (cacherr.cycle.moverlist.MoverList): the engine lists
    sidecars itself, since the cycle only knows their videos."""

    def add(self, fast_path: str | Path) -> None: ...

    def remove(self, fast_path: str | Path) -> None: ...


@dataclass(frozen=True)
class Result:
    """What one action did. `outcome`: cached | adopted | evicted | released | untracked.

    `sidecars`: the sidecars that came or went with the file; `detail`: anything the user
    should hear about (a sidecar skipped, a merged view serving another copy).
    """

    kind: str
    relative_path: str
    outcome: str
    size_bytes: int
    fast_path: Path
    detail: str = ""
    view_serves_fast: bool | None = None  # union: the merged view's own answer, if it gives one
    sidecars: tuple[str, ...] = ()


class Engine:
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
    shared by the whole process by default); copies run at idle I/O priority. `mover_list` (settable later) receives the sidecars'
    fast paths before their copies and loses them after their eviction.

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
            session_check=session_check,
            copy_options=CopyOptions(
                verify, chunk_size_bytes, self.cancel, progress, throttle, self.checkpoints
            ),
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
        """Given a share-relative (union) or root-relative (symlink) path, cache the file
        and its sidecars.

        Return a Result; raise Held (a guard holds new transfers), Refused (nothing
        changed), NoSpace, SourceChanged, InUse, Cancelled or CopyFailed (the partial copy
        removed, the original untouched). A sidecar that cannot come along is named in
        the Result's detail; the video stays cached.
        """
        parts = paths.split_relative(relative_path)
        if (self.layout, self.original) not in ROWS:
            raise Refused(relative_path, f"{self.layout}/{self.original} is not supported")
        with self.file_claims.claimed(relative_path):
            return self._cache(relative_path, parts, root)

    def _cache(self, relative_path: str, parts: tuple[str, ...], root: Path | None) -> Result:
        self._require_settled(relative_path)
        entry = self.ledger.get(relative_path)
        if entry is not None:
            return self._promote("cache", entry, "cached")
        guards.require_not_held(self.host, relative_path)
        action = self._plan_cache(relative_path, parts, root)
        with self._transfer(action.slow_branch):
            self._run_cache(action)
        notes = []
        if action.original != self.original:
            notes.append(f"hardlinked: cached as a {action.original}, the original stays")
        serves = self._view_serves(action)
        if serves is False:
            log.warning(
                "the merged view does not serve the fast copy of %s: is %s one of the "
                "share's storages?",
                relative_path,
                action.fast_branch,
            )
            notes.append("the merged view serves another copy than the fast one")
        symlink_root = Path(action.slow_branch) if self.layout == "symlink" else None
        sidecars, skipped = self._bring_sidecars(
            relative_path, action.slow_path.parent, symlink_root, guarded=True
        )
        return Result(
            "cache",
            relative_path,
            "cached",
            action.slow.size_bytes,
            action.fast_path,
            detail="; ".join(notes + skipped),
            view_serves_fast=serves,
            sidecars=tuple(sidecars),
        )

    def _promote(self, kind: str, entry: CachedFile, outcome: str) -> Result:
        """A rule wants for itself what came along as a sidecar: keep it as it is, as a
        file of its own. Refused if it is in the ledger for itself already."""
        if entry.sidecar_of is None:
            raise Refused(entry.relative_path, "is already in the ledger")
        self.ledger.promote_sidecar(entry.relative_path)
        log.info("%s, cached as a sidecar, is now kept for itself", entry.relative_path)
        return Result(
            kind, entry.relative_path, outcome, entry.fast.size_bytes, entry.fast_path,
            detail="was a sidecar; now kept for itself",
        )  # fmt: skip

    def _plan_cache(
        self,
        relative_path: str,
        parts: tuple[str, ...],
        root: Path | None,
        sidecar_of: str | None = None,
    ) -> Action:
        """The cache action for one file; Refused or NoSpace before anything is written."""
        try:
            if self.layout == "union":
                assert self.union is not None
                action = plans.union_cache(
                    self.union, self.original, relative_path, parts,
                    host=self.host, sidecar_of=sidecar_of,
                )  # fmt: skip
            else:
                assert self.symlink is not None
                action = plans.symlink_cache(
                    self.symlink, self.roots, self.original, relative_path, parts, root,
                    sidecar_of=sidecar_of,
                )  # fmt: skip
            free = paths.free_bytes(Path(action.fast_branch))
        except OSError as error:
            raise Refused(error.filename or relative_path, error.strerror or str(error)) from None
        if free - action.slow.size_bytes < self.min_free_bytes:
            raise NoSpace(
                action.fast_path,
                f"needs {action.slow.size_bytes} bytes and "
                f"min_free {self.min_free_bytes}; {free} bytes free",
            )
        return action

    def _run_cache(self, action: Action) -> None:
        """Journal and carry out a planned cache action; on any error, settle it from the
        disks (as start-up recovery would) and raise the engine's error."""
        row = ROWS[(action.layout, action.original)]
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
            "cached %s (%d bytes, original: %s) to %s",
            action.relative_path,
            action.slow.size_bytes,
            action.original,
            action.fast_path,
        )

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

    # -- adopt -------------------------------------------------------------------

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

    def _adopt(self, relative_path: str, parts: tuple[str, ...]) -> Result:
        self._require_settled(relative_path)
        known = self.ledger.get(relative_path)
        if known is not None:
            return self._promote("adopt", known, "adopted")
        entry = self._adopt_entry(relative_path, parts)
        log.info("adopted %s (already on %s)", relative_path, entry.fast_branch)
        folder = entry.slow_path.parent if entry.slow_path else None
        sidecars, skipped = self._bring_sidecars(relative_path, folder, None, guarded=False)
        return Result(
            "adopt",
            relative_path,
            "adopted",
            entry.fast.size_bytes,
            entry.fast_path,
            detail="; ".join(skipped),
            sidecars=tuple(sidecars),
        )

    def _adopt_entry(
        self, relative_path: str, parts: tuple[str, ...], sidecar_of: str | None = None
    ) -> CachedFile:
        """Record (and return) the ledger entry of a file found on the fast branch."""
        union = self.union
        assert union is not None
        fast = Path(union.fast)
        try:
            paths.require_outside(fast, union.view)
            paths.require_fast_branch(fast)
            plans.require_share_uses_pool(self.host, parts[0], fast)
            missing = paths.walk_folders(fast, parts)
            st = None if missing else paths.regular_file(fast / relative_path)
            if st is None:
                raise Refused(fast / relative_path, "is not on the fast branch")
            slow_branch, slow = None, None
            for branch in map(Path, union.slow):
                try:
                    if paths.walk_folders(branch, parts):
                        continue
                except FileNotFoundError:
                    continue
                found = paths.regular_file(branch / relative_path)
                if found is not None:
                    slow_branch, slow = str(branch), identity_of(found)
                    break
        except OSError as error:
            raise Refused(error.filename or relative_path, error.strerror or str(error)) from None
        entry = CachedFile(
            relative_path=relative_path,
            layout="union",
            # A hardlinked file is only ever released: moving one name frees nothing.
            original="shadow" if st.st_nlink > 1 else self.original,
            kind="adopted",
            fast_branch=str(fast),
            fast=identity_of(st),
            slow_branch=slow_branch,
            slow=slow,
            sidecar_of=sidecar_of,
            cached_at=time.time(),
        )
        with self.ledger.transaction():
            self.ledger.record(entry)
            if sidecar_of is not None:
                self.ledger.refer_sidecar(relative_path, sidecar_of)
            self.ledger.log_operation("adopt", relative_path, "adopted", st.st_size)
        return entry

    # -- sidecars ----------------------------------------------------------------

    def _bring_sidecars(
        self, video: str, slow_folder: Path | None, root: Path | None, *, guarded: bool
    ) -> tuple[list[str], list[str]]:
        """After `video` was cached or adopted: cache, adopt or reference each sidecar.
        `guarded`: they are part of the video's transfer (the guards were asked for it).

        Return (the sidecars now with it, a note for each one that could not come).
        """
        if self.sidecars == "none":
            return [], []
        folder = video.rpartition("/")[0]
        fast_folder = Path(self._fast_root()) / folder
        names: set[str] = set()
        for listed in filter(None, (slow_folder, fast_folder if self.layout == "union" else None)):
            with contextlib.suppress(OSError):
                names.update(os.listdir(listed))
        brought, skipped = [], []
        for name in sidecar_names(self.sidecars, video.rpartition("/")[2], names):
            sidecar = f"{folder}/{name}"
            if self.cancel.is_set():
                skipped.append(f"sidecar {name} not cached: cancelled")
                continue
            try:
                self._bring_sidecar(video, sidecar, fast_folder / name, root, guarded)
            except EngineError as error:
                log.warning("sidecar %s of %s stays where it is: %s", sidecar, video, error)
                skipped.append(f"sidecar {name} not cached: {error.reason}")
                if isinstance(error, Held):
                    break
                continue
            brought.append(sidecar)
        return brought, skipped

    def _bring_sidecar(
        self, video: str, sidecar: str, fast_path: Path, root: Path | None, guarded: bool
    ) -> None:
        parts = paths.split_relative(sidecar)
        # Another video of the folder may be bringing (or taking) the same poster: wait.
        with self.file_claims.claimed(sidecar, wait=True, cancel=self.cancel):
            self._bring_claimed_sidecar(video, sidecar, parts, fast_path, root, guarded)

    def _bring_claimed_sidecar(
        self,
        video: str,
        sidecar: str,
        parts: tuple[str, ...],
        fast_path: Path,
        root: Path | None,
        guarded: bool,
    ) -> None:
        entry = self.ledger.get(sidecar)
        if entry is not None:
            if entry.sidecar_of is None:
                raise Refused(sidecar, "is cached for itself already")
            with self.ledger.transaction():
                self.ledger.refer_sidecar(sidecar, video)
            return
        self._require_settled(sidecar)
        if self.layout == "union" and os.path.lexists(fast_path):
            self._list(fast_path)
            try:
                self._adopt_entry(sidecar, parts, sidecar_of=video)
            except BaseException:
                self._unlist(fast_path)
                raise
            return
        if not guarded:
            guards.require_not_held(self.host, sidecar)
        action = self._plan_cache(sidecar, parts, root, sidecar_of=video)
        self._list(action.fast_path)  # listed before its copy starts (invariant 9)
        try:
            with self._transfer(action.slow_branch):
                self._run_cache(action)
        except BaseException:
            if self.ledger.get(sidecar) is None:
                self._unlist(action.fast_path)
            raise

    def _list(self, fast_path: Path) -> None:
        if self.mover_list is not None:
            self.mover_list.add(fast_path)

    def _unlist(self, fast_path: Path) -> None:
        if self.mover_list is not None:
            self.mover_list.remove(fast_path)

    # -- evict -------------------------------------------------------------------

    def evict(self, relative_path: str) -> Result:
        """Given a ledger entry's path, put the file back as the ledger says it was cached
        (adopted files: released, or moved back under `original: move`), together with
        the sidecars no other cached video references: those first, so that a crash in
        between leaves a video with fewer sidecars, never a sidecar without its video.

        Return a Result (`untracked` when a copy changed under cacherr: nothing deleted);
        raise Held, Refused (not cached, a sidecar still needed, unsafe setup), NoSpace
        (no slow branch can take it back), InUse (a player reads it or its sidecar), or
        an OSError-derived EngineError after rolling the partial step back. If a sidecar
        cannot go, the video stays too.
        """
        parts = paths.split_relative(relative_path)
        with self.file_claims.claimed(relative_path):
            return self._evict(relative_path, parts)

    def _evict(self, relative_path: str, parts: tuple[str, ...]) -> Result:
        entry = self.ledger.get(relative_path)
        if entry is None:
            raise Refused(relative_path, "is not in the ledger")
        self._require_settled(relative_path)
        own = []
        if entry.sidecar_of is not None:
            videos = self.ledger.sidecar_refs(relative_path)
            if videos:
                raise Refused(
                    relative_path, f"is a sidecar of {', '.join(videos)}; it leaves with them"
                )
        else:
            for sidecar in self.ledger.sidecars_of(relative_path):
                if self.ledger.sidecar_refs(sidecar) == [relative_path]:
                    found = self.ledger.get(sidecar)
                    if found is not None:  # asked about: this video's sessions
                        own.append(replace(found, sidecar_of=relative_path))
        if any(not _is_release(e) for e in (entry, *own)):
            guards.require_not_held(self.host, relative_path)
        gone = []
        for sidecar_entry in own:
            sidecar = sidecar_entry.relative_path
            with self.file_claims.claimed(sidecar, wait=True, cancel=self.cancel):
                if self.ledger.sidecar_refs(sidecar) != [relative_path]:
                    continue  # another video took it meanwhile, or it is gone
                self._require_settled(sidecar)
                self._evict_entry(sidecar_entry, paths.split_relative(sidecar))
            self._unlist(sidecar_entry.fast_path)
            gone.append(sidecar)
        result = self._evict_entry(entry, parts)
        gone += self._evict_orphan_sidecars()
        return replace(result, sidecars=tuple(gone)) if gone else result

    def _evict_entry(self, entry: CachedFile, parts: tuple[str, ...]) -> Result:
        """Evict one entry (the guards were asked by the caller)."""
        relative_path = entry.relative_path
        if _is_release(entry):
            with self.ledger.transaction():
                self.ledger.forget(relative_path)
                self.ledger.log_operation("evict", relative_path, "released")
            log.info("released %s (left on %s for the mover)", relative_path, entry.fast_branch)
            return Result(
                "evict", relative_path, "released", entry.fast.size_bytes, entry.fast_path
            )
        action = self._plan_evict(entry, parts)
        if isinstance(action, Result):
            return action
        with self._transfer(action.slow_branch):
            return self._run_evict(entry, action)

    def _plan_evict(self, entry: CachedFile, parts: tuple[str, ...]) -> Action | Result:
        relative_path = entry.relative_path
        created: list[Path] = []
        original, slow_branch, slow = entry.original, entry.slow_branch, entry.slow
        try:
            # An unmounted pool would look like a vanished copy; refuse rather than untrack.
            if entry.layout == "union":
                paths.require_fast_branch(Path(entry.fast_branch))
            else:
                paths.require_cache_dir(Path(entry.fast_branch))
            paths.walk_folders(Path(entry.fast_branch), parts)
            if entry.kind == "adopted" and slow is not None:
                # Released under `original: move` with a slow copy already there: drop the
                # fast copy as a shadow's, if the two are the same file.
                same = (slow.size_bytes, slow.mtime_ns) == (
                    entry.fast.size_bytes, entry.fast.mtime_ns)  # fmt: skip
                if not same:
                    return self._untrack(entry, "its slow copy differs from the adopted fast "
                                         "copy; both are left for you to compare")  # fmt: skip
                original = "shadow"
                paths.walk_folders(Path(slow_branch), parts)  # type: ignore[arg-type]
            elif entry.layout == "union" and entry.original == "move":
                branch, created = plans.move_back_target(
                    entry, parts, union=self.union, host=self.host
                )
                slow_branch, slow = str(branch), slow or entry.fast
            else:
                paths.walk_folders(Path(slow_branch), parts)  # type: ignore[arg-type]
        except OSError as error:
            raise Refused(error.filename or relative_path, error.strerror or str(error)) from None
        return Action(
            "evict",
            entry.layout,
            original,
            relative_path,
            entry.fast_branch,
            slow_branch,  # type: ignore[arg-type]
            slow,  # type: ignore[arg-type]
            entry.fast,
            backup_name=entry.backup_name,
            created_folders=tuple(str(f) for f in created),
            sidecar_of=entry.sidecar_of,
        )

    def _run_evict(self, entry: CachedFile, action: Action) -> Result:
        relative_path = action.relative_path
        row = ROWS.get((action.layout, action.original))
        if row is None:
            raise Refused(relative_path, f"{action.layout}/{action.original} is not supported")
        action_id = self.journal.begin(action)
        try:
            row.evict(self.context, action_id, action)
        except SourceChanged as changed:
            paths.remove_empty_folders([Path(f) for f in action.created_folders])
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
        except OSError as error:
            self._undo(action_id)
            raise _engine_error(error, action.fast_path) from None
        except BaseException:  # InUse, Cancelled, ...: settled from the disks (rolled back)
            self._undo(action_id)
            raise
        settle(self.journal, self.ledger, action_id, action, Decision("done", "evicted"))
        log.info("evicted %s from %s to %s", relative_path, entry.fast_path, action.slow_path)
        return Result("evict", relative_path, "evicted", entry.fast.size_bytes, entry.fast_path)

    def _untrack(self, entry: CachedFile, why: str) -> Result:
        with self.ledger.transaction():
            self.ledger.forget(entry.relative_path)
            self.ledger.log_operation("evict", entry.relative_path, "untracked", detail=why)
        log.warning("untracked %s: %s", entry.relative_path, why)
        return Result(
            "evict", entry.relative_path, "untracked", entry.fast.size_bytes, entry.fast_path,
            detail=why,
        )  # fmt: skip

    def _evict_orphan_sidecars(self) -> list[str]:
        """Evict the sidecars no video references any more (left by an earlier failure);
        return those now gone. One that cannot go now stays for the next eviction."""
        gone = []
        for entry in self.ledger.orphan_sidecars():
            try:
                with self.file_claims.claimed(entry.relative_path):
                    fresh = self.ledger.get(entry.relative_path)
                    if fresh is None or self.ledger.sidecar_refs(entry.relative_path):
                        continue  # evicted or taken by another video meanwhile
                    if self.journal.unfinished(entry.relative_path):
                        continue
                    if not _is_release(fresh):
                        guards.require_not_held(self.host, entry.relative_path)
                    self._evict_entry(fresh, paths.split_relative(entry.relative_path))
            except EngineError as error:
                log.warning("sidecar %s stays for now: %s", entry.relative_path, error)
                if isinstance(error, Held):
                    break
                continue
            self._unlist(entry.fast_path)
            gone.append(entry.relative_path)
        return gone

    # -- shared ------------------------------------------------------------------

    def _fast_root(self) -> str:
        return str(self.union.fast if self.union is not None else self.symlink.dir)  # type: ignore[union-attr]

    @contextlib.contextmanager
    def _transfer(self, slow_branch: str) -> Iterator[None]:
        """One transfer per slow branch at a time, at idle I/O priority."""
        with self.branch_locks.held(slow_branch, self.cancel), guards.idle_io_priority():
            yield

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


def _is_release(entry: CachedFile) -> bool:
    """Evicting it only drops it from the ledger: adopted (unless `original: move` in the
    union layout, which moves it back), or recorded without a slow side."""
    if entry.layout == "union" and entry.original == "move":
        return False
    return entry.kind == "adopted" or entry.slow is None


def _engine_error(error: OSError, path: Path) -> EngineError:
    """An OSError from a step, as the engine's error naming the file and the reason."""
    if error.errno == errno.ENOSPC:
        return NoSpace(error.filename or path, "the fast file system is full")
    return CopyFailed(error.filename or path, error.strerror or str(error))
