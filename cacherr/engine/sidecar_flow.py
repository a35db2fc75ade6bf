"""The engine's sidecars: the files that travel with a video (sidecars.py says which),
brought along after it is cached or adopted, and taken back once no cached video refers
to them. Mixed into `Engine` (engine.py), whose attributes it uses."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from cacherr.engine import guards, paths
from cacherr.engine.errors import EngineError, Held, Refused
from cacherr.engine.eviction import is_release
from cacherr.engine.sidecars import sidecar_names

log = logging.getLogger("cacherr.engine.engine")


class SidecarFlow:
    """Bring and take back sidecars, for `Engine`."""

    def _bring_sidecars(
        self, video: str, slow_folder: Path | None, root: Path | None, *, guarded: bool
    ) -> tuple[list[str], list[str], list[str]]:
        """After `video` was cached or adopted: cache, adopt or reference each sidecar.
        `guarded`: they are part of the video's transfer (the guards were asked for it).

        Return (the sidecars now with it, a note for each one that could not come, the
        names refused by the name rule: never cached, counted as skips).
        """
        if self.sidecars == "none":
            return [], [], []
        folder = video.rpartition("/")[0]
        fast_folder = Path(self._fast_root()) / folder
        names: set[str] = set()
        for listed in filter(None, (slow_folder, fast_folder if self.layout == "union" else None)):
            with contextlib.suppress(OSError):
                names.update(os.listdir(listed))
        brought, skipped, refused = [], [], []
        for name in sidecar_names(self.sidecars, video.rpartition("/")[2], names):
            problem = paths.name_problem(name)
            if problem is not None:
                log.warning("sidecar %s of %s stays where it is: %s", ascii(name), video, problem)
                refused.append(ascii(name))
                continue
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
        return brought, skipped, refused

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
                    if not is_release(fresh):
                        guards.require_not_held(self.host, entry.relative_path)
                    self._evict_entry(
                        fresh, paths.split_relative(entry.relative_path, names=False)
                    )
            except EngineError as error:
                log.warning("sidecar %s stays for now: %s", entry.relative_path, error)
                if isinstance(error, Held):
                    break
                continue
            self._unlist(entry.fast_path)
            gone.append(entry.relative_path)
        return gone
