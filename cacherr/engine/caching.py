"""The engine's caching half: plan and carry out a cache action, or adopt a file that is
already on the fast branch, and record it in the ledger. Mixed into `Engine`
(engine.py), whose attributes it uses."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cacherr.engine import guards, paths, plans
from cacherr.engine.actions import Action, Result
from cacherr.engine.copy import identity_of
from cacherr.engine.errors import NoSpace, Refused, from_os_error
from cacherr.engine.recovery import settle
from cacherr.engine.rows import Decision
from cacherr.engine.table import ROWS
from cacherr.state.ledger import CachedFile

log = logging.getLogger("cacherr.engine.engine")


class Caching:
    """cache and adopt, for `Engine`."""

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
        sidecars, skipped, refused = self._bring_sidecars(
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
            refused_names=tuple(refused),
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
            placed = row.cache(self.context, action_id, action)
        except OSError as error:
            self._undo(action_id)
            raise from_os_error(error, action.fast_path) from None
        except BaseException:
            self._undo(action_id)
            raise
        decision = Decision("done", "cached", placed.copy, slow=placed.original)
        settle(self.journal, self.ledger, action_id, action, decision)
        log.info(
            "cached %s (%d bytes, original: %s) to %s",
            action.relative_path,
            action.slow.size_bytes,
            action.original,
            action.fast_path,
        )

    def _adopt(self, relative_path: str, parts: tuple[str, ...]) -> Result:
        self._require_settled(relative_path)
        known = self.ledger.get(relative_path)
        if known is not None:
            return self._promote("adopt", known, "adopted")
        entry = self._adopt_entry(relative_path, parts)
        log.info("adopted %s (already on %s)", relative_path, entry.fast_branch)
        folder = entry.slow_path.parent if entry.slow_path else None
        sidecars, skipped, refused = self._bring_sidecars(relative_path, folder, None, guarded=False)
        return Result(
            "adopt",
            relative_path,
            "adopted",
            entry.fast.size_bytes,
            entry.fast_path,
            detail="; ".join(skipped),
            sidecars=tuple(sidecars),
            refused_names=tuple(refused),
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

