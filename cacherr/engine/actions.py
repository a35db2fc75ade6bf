"""What one action is (a plain record, written to the journal before anything happens),
and what it did (`Result`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cacherr.engine import paths
from cacherr.state.ledger import FileIdentity

KINDS = ("cache", "evict")


@dataclass(frozen=True)
class Action:
    """Cache or evict one file, with everything recovery needs to decide from the disks.

    Union layout: `fast_branch` is the pool, `slow_branch` the disk that holds the file,
    `relative_path` is share-relative. Symlink layout: `fast_branch` is the cache `dir`,
    `slow_branch` the host root that holds the original, `link_target` what the symlink
    says (the copy as Plex sees it). Evict under `original: move`: `slow_branch` is where
    the file goes back to, and `created_folders` are made there.
    """

    kind: str
    layout: str
    original: str
    relative_path: str
    fast_branch: str
    slow_branch: str
    slow: FileIdentity  # the original as measured on its branch
    fast: FileIdentity | None = None  # evict: the cached copy as the ledger knows it
    backup_name: str | None = None
    link_target: str | None = None
    created_folders: tuple[str, ...] = field(default_factory=tuple)
    sidecar_of: str | None = None  # a sidecar: the video it travels with

    @property
    def fast_path(self) -> Path:
        return Path(self.fast_branch) / self.relative_path

    @property
    def slow_path(self) -> Path:
        return Path(self.slow_branch) / self.relative_path

    @property
    def backup_path(self) -> Path:
        return self.slow_path.with_name(self.backup_name or paths.backup_path(self.slow_path).name)

    @property
    def link_temp_path(self) -> Path:
        return paths.link_temp_path(self.slow_path)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Action:
        data = json.loads(text)
        data["slow"] = FileIdentity(**data["slow"])
        data["fast"] = FileIdentity(**data["fast"]) if data["fast"] else None
        data["created_folders"] = tuple(data["created_folders"])
        return cls(**data)


@dataclass(frozen=True)
class Result:
    """What one action did. `outcome`: cached | adopted | evicted | released | untracked.

    `sidecars`: the sidecars that came or went with the file; `detail`: anything the user
    should hear about (a sidecar skipped, a merged view serving another copy);
    `refused_names`: sidecars skipped for their names (the name rule), counted as skips.
    """

    kind: str
    relative_path: str
    outcome: str
    size_bytes: int
    fast_path: Path
    detail: str = ""
    view_serves_fast: bool | None = None  # union: the merged view's own answer, if it gives one
    sidecars: tuple[str, ...] = ()
    refused_names: tuple[str, ...] = ()
