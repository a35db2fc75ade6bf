"""Host paths ↔ the relative paths the ledger and the engine use.

Union layout: paths are share-relative, under the merged view (`/mnt/user/Movies/x.mkv`
→ `Movies/x.mkv`). Symlink layout: paths are relative to the `paths[].host` root that
holds them. A host path outside these roots is refused (invariant 5), never guessed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cacherr.config.model import Config
from cacherr.state.ledger import CachedFile


@dataclass(frozen=True)
class Located:
    root: Path  # the merged view (union) or the host root (symlink)
    relative_path: str


class Locator:
    """Given the config, translate between host paths and ledger paths."""

    def __init__(self, config: Config):
        self.layout = config.cache.layout
        if self.layout == "union":
            self.roots: tuple[Path, ...] = (Path(config.cache.union.view),)
        else:
            hosts = {Path(mapping.host) for mapping in config.paths}
            self.roots = tuple(sorted(hosts, key=lambda p: (-len(str(p)), str(p))))

    def locate(self, host_path: str) -> Located | None:
        """The root and relative path of a host path; None if it is under no root or
        would escape one (`..`, empty components)."""
        normal = os.path.normpath(host_path)
        if normal != host_path.rstrip("/") or "/../" in f"/{host_path}/":
            return None
        for root in self.roots:
            prefix = str(root).rstrip("/") + "/"
            if normal.startswith(prefix):
                relative = normal[len(prefix):]
                if relative and ".." not in relative.split("/"):
                    return Located(root, relative)
        return None

    def host_path(self, entry: CachedFile) -> str:
        """Where Plex's host-side path of a ledger entry is (through the view or root)."""
        if self.layout == "union":
            return str(self.roots[0] / entry.relative_path)
        return str(Path(entry.slow_branch or self.roots[0]) / entry.relative_path)
