"""The engine's eviction half: put a file back as the ledger says it was cached, with
the sidecars that leave with it. Before anything is decided, the branches the eviction
involves must be mounted: a pool or disk that did not mount makes a file look gone, and
a file that looks gone would be untracked. Mixed into `Engine` (engine.py), whose
attributes it uses."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from cacherr.engine import guards, paths, plans
from cacherr.engine.actions import Action, Result
from cacherr.engine.errors import Refused, SourceChanged, from_os_error
from cacherr.engine.recovery import settle
from cacherr.engine.rows import Decision
from cacherr.engine.safety import same_bytes
from cacherr.engine.table import ROWS
from cacherr.state.ledger import CachedFile

log = logging.getLogger("cacherr.engine.engine")


def is_release(entry: CachedFile) -> bool:
    """Evicting it only drops it from the ledger: adopted (unless `original: move` in the
    union layout, which moves it back), or recorded without a slow side."""
    if entry.layout == "union" and entry.original == "move":
        return False
    return entry.kind == "adopted" or entry.slow is None


class Eviction:
    """evict, for `Engine`."""

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
        if any(not is_release(e) for e in (entry, *own)):
            guards.require_not_held(self.host, relative_path)
        gone = []
        for sidecar_entry in own:
            sidecar = sidecar_entry.relative_path
            with self.file_claims.claimed(sidecar, wait=True, cancel=self.cancel):
                if self.ledger.sidecar_refs(sidecar) != [relative_path]:
                    continue  # another video took it meanwhile, or it is gone
                self._require_settled(sidecar)
                self._evict_entry(sidecar_entry, paths.split_relative(sidecar, names=False))
            self._unlist(sidecar_entry.fast_path)
            gone.append(sidecar)
        result = self._evict_entry(entry, parts)
        gone += self._evict_orphan_sidecars()
        return replace(result, sidecars=tuple(gone)) if gone else result

    def _evict_entry(self, entry: CachedFile, parts: tuple[str, ...]) -> Result:
        """Evict one entry (the guards were asked by the caller)."""
        relative_path = entry.relative_path
        if is_release(entry):
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
            # A pool or disk that did not mount would look like a vanished copy: refuse
            # (the file stays cached and is evicted once it is back), never untrack.
            if entry.layout == "union":
                paths.require_fast_branch(Path(entry.fast_branch), parts[0])
            else:
                paths.require_cache_dir(Path(entry.fast_branch))
            paths.walk_folders(Path(entry.fast_branch), parts)
            if entry.kind == "adopted" and slow is not None:
                # Released under `original: move` with a slow copy already there: drop the
                # fast copy as a shadow's, if the two are the same file: the same bytes,
                # not only size and mtime (a tagger keeps both). The row then checks that
                # neither changed since they were recorded.
                paths.require_slow_branch(Path(slow_branch), parts[0])  # type: ignore[arg-type]
                same = (slow.size_bytes, slow.mtime_ns) == (
                    entry.fast.size_bytes, entry.fast.mtime_ns,
                ) and same_bytes(entry.fast_path, Path(slow_branch) / relative_path)  # fmt: skip
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
                share = parts[0] if entry.layout == "union" else None
                paths.require_slow_branch(Path(slow_branch), share)  # type: ignore[arg-type]
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
            link_target=_link_target(self, entry),
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
            # Roll back what the eviction had begun (a copy made back, a swap), then
            # untrack: a file that changed under cacherr is never deleted.
            self._undo(action_id)
            if self.journal.unfinished(relative_path):
                raise Refused(relative_path, f"waits for recovery: {changed}") from None
            if self.ledger.get(relative_path) is not None:
                with self.ledger.transaction():
                    self.ledger.forget(relative_path)
                    self.ledger.log_operation(
                        "evict", relative_path, "untracked", detail=str(changed)
                    )
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
            raise from_os_error(error, action.fast_path) from None
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


def _link_target(engine, entry: CachedFile) -> str | None:
    """Symlink layout: the text of cacherr's symlink for this entry (as Plex sees it), as
    recorded; for entries from before it was recorded, as today's `plex_dir` says."""
    if entry.layout != "symlink":
        return None
    if entry.link_target is not None or engine.symlink is None:
        return entry.link_target
    return engine.symlink.plex_dir.rstrip("/") + "/" + entry.relative_path
