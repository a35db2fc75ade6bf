"""A sandbox plus a ledger, and engines for both built rows, described by plain values so
a subprocess (the crash and strace tests) can rebuild the same engine."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cacherr.config.model import SymlinkLayout, UnionLayout
from cacherr.engine import Engine
from cacherr.state.ledger import Ledger


@dataclass(frozen=True)
class World:
    """Where everything is: branches, view, symlink dir/root, state directory."""

    fast: str
    slow: tuple[str, ...]
    view: str | None
    state_dir: str

    @property
    def symlink_dir(self) -> Path:
        return Path(self.fast) / "symlink-cache"

    @property
    def symlink_root(self) -> Path:
        return Path(self.slow[0]) / "media"

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> World:
        data = json.loads(text)
        data["slow"] = tuple(data["slow"])
        return cls(**data)

    @classmethod
    def of(cls, box, state_dir: Path) -> World:
        world = cls(
            str(box.fast),
            tuple(str(s) for s in box.slow),
            str(box.view) if box.view else None,
            str(state_dir),
        )
        world.symlink_dir.mkdir(exist_ok=True)
        world.symlink_root.mkdir(exist_ok=True)
        return world

    def engine(self, layout: str, ledger: Ledger | None = None, **options) -> Engine:
        ledger = ledger or Ledger.open(self.state_dir)
        if layout == "union":
            union = UnionLayout(
                view=Path(self.view) if self.view else None,  # type: ignore[arg-type]
                fast=Path(self.fast),
                slow=tuple(Path(s) for s in self.slow),
            )
            return Engine(ledger, layout="union", original="shadow", union=union, **options)
        symlink = SymlinkLayout(dir=self.symlink_dir, plex_dir=str(self.symlink_dir))
        return Engine(
            ledger,
            layout="symlink",
            original="backup",
            symlink=symlink,
            roots=[self.symlink_root],
            **options,
        )

    def plex_path(self, layout: str, relative_path: str) -> Path:
        """The path Plex reads: through the merged view, or the (possibly symlinked) original."""
        if layout == "union":
            return Path(self.view) / relative_path  # type: ignore[arg-type]
        return self.symlink_root / relative_path

    def write_original(self, layout: str, relative_path: str, data: bytes) -> Path:
        base = Path(self.slow[0]) if layout == "union" else self.symlink_root
        path = base / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
        return path
