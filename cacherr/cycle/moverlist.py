"""The mover exclusion file (invariant 9) for Unraid's Mover Tuning plugin.

It lists the fast-branch paths of every cached and adopted file, one per line, with no
blank line (a blank line would match every path in older Mover Tuning versions), and is
rewritten atomically (temporary file, fsync, rename, fsync of the folder). An entry is
added before its copy starts and removed only after its eviction is durable; at start-up
the file is rewritten from the ledger, which settles whatever a crash left between the
two. cacherr only rewrites the block between its own marker lines, so the file can be
shared with the user's own entries.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

BEGIN = "### cacherr: begin (lines up to the end marker are managed by cacherr)"
END = "### cacherr: end"


class MoverList:
    """Given the file's path, keep cacherr's block in it; thread-safe."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: set[str] = set()

    def rewrite(self, fast_paths: Iterable[str | Path]) -> None:
        """Make cacherr's block exactly `fast_paths` (sorted)."""
        with self._lock:
            self._entries = {str(p) for p in fast_paths}
            self._write()

    def add(self, fast_path: str | Path) -> None:
        with self._lock:
            if str(fast_path) not in self._entries:
                self._entries.add(str(fast_path))
                self._write()

    def remove(self, fast_path: str | Path) -> None:
        with self._lock:
            if str(fast_path) in self._entries:
                self._entries.discard(str(fast_path))
                self._write()

    def entries(self) -> list[str]:
        """The paths in cacherr's block of the file on disk."""
        _, block, _ = self._split(self._read())
        return block

    # -- the file ---------------------------------------------------------------------

    def _read(self) -> list[str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line.rstrip("\r") for line in text.splitlines()]

    @staticmethod
    def _split(lines: list[str]) -> tuple[list[str], list[str], list[str]]:
        """(the user's lines before, cacherr's block, the user's lines after)."""
        if BEGIN not in lines:
            return [line for line in lines if line.strip()], [], []
        start = lines.index(BEGIN)
        end = lines.index(END, start) if END in lines[start:] else len(lines)
        before = [line for line in lines[:start] if line.strip()]
        after = [line for line in lines[end + 1:] if line.strip()]
        return before, lines[start + 1:end], after

    def _write(self) -> None:
        before, _, after = self._split(self._read())
        lines = before + [BEGIN] + sorted(self._entries) + [END] + after
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                         dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            if self.path.exists():
                os.chmod(temporary, self.path.stat().st_mode & 0o777)
            else:
                os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
