"""The mover exclusion file (invariant 9) for Unraid's Mover Tuning plugin.

It lists the fast-branch paths of every cached and adopted file, one per line, with no
blank line (a blank line would match every path in older Mover Tuning versions), and is
rewritten atomically (temporary file, fsync, rename, fsync of the folder). An entry is
added before its copy starts and removed only after its eviction is durable; at start-up
the file is rewritten from the ledger, which settles whatever a crash left between the
two. cacherr only rewrites the block between its own marker lines, so the file can be
shared with the user's own entries.

What Mover Tuning does with a line (its `age_mover`, see ../shared/vendor/mover-tuning):
it takes every line holding `/mnt/<pool>/<share>`, turns each into `-not -path "LINE"` of
a `find` command it runs with `eval`; a line whose last component holds `*` is a
pattern, any other must exist, and a folder protects everything below it. So the block
holds, besides one line per file:

- per share, one pattern for cacherr's temporary files (`.../<share>/*.cacherr-tmp`):
  a mover running mid-copy would otherwise move the half-written file;
- one folder line instead of the lines of a folder whose every file is listed (the
  whole `find` command must stay under the kernel's argument limit, ~2 MB);
- never a raw ` $ " \\ or control character (the shell would run or break on it): such a
  character becomes `*`, and the line a pattern. cacherr refuses such names today;
  entries from before are kept protected this way.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
import threading
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from cacherr.engine.paths import TEMP_SUFFIX, name_problem

BEGIN = "### cacherr: begin (lines up to the end marker are managed by cacherr)"
END = "### cacherr: end"
# What one line costs in Mover Tuning's `find` command besides its text: -not -path "".
LINE_OVERHEAD_BYTES = len('-not -path "" ')
# Mover Tuning fails with "Argument list too long" (and moves nothing) past ~2 MB of
# arguments; doctor warns as one share's lines approach this.
SHARE_LIMIT_BYTES = 1_500_000


class MoverList:
    """Given the file's path (and the fast root, for the temporary-file patterns and the
    folder lines), keep cacherr's block in it; thread-safe."""

    def __init__(self, path: str | Path, fast_root: str | Path | None = None):
        self.path = Path(path)
        self.fast_root = Path(fast_root) if fast_root is not None else None
        self._lock = threading.Lock()
        self._entries: frozenset[str] = frozenset()

    def rewrite(self, fast_paths: Iterable[str | Path]) -> None:
        """Make cacherr's block list exactly `fast_paths`."""
        with self._lock:
            self._commit(frozenset(str(p) for p in fast_paths))

    def add(self, fast_path: str | Path) -> None:
        """List one more file (before its copy starts); raise OSError if the file cannot
        be written (the entry is then not taken either)."""
        with self._lock:
            if str(fast_path) not in self._entries:
                self._commit(self._entries | {str(fast_path)})

    def remove(self, fast_path: str | Path) -> None:
        with self._lock:
            if str(fast_path) in self._entries:
                self._commit(self._entries - {str(fast_path)})

    def entries(self) -> list[str]:
        """The lines in cacherr's block of the file on disk."""
        _, block, _ = self._split(self._read())
        return block

    def covers(self, fast_path: str | Path) -> bool:
        """True if the file on disk protects `fast_path` from Mover Tuning."""
        return covered(self.entries(), str(fast_path))

    # -- the file ---------------------------------------------------------------------

    def _commit(self, entries: frozenset[str]) -> None:
        """Write the block for `entries`; only once it is on disk do they become ours."""
        self._write(block_lines(entries, self.fast_root))
        self._entries = entries

    def _read(self) -> list[str]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
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

    def _write(self, block: list[str]) -> None:
        before, _, after = self._split(self._read())
        lines = before + [BEGIN] + block + [END] + after
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


def safe_line(path: str) -> str:
    """A list line for `path` that Mover Tuning's shell cannot run or break on: each
    refused character becomes `*`, and the line a pattern (its last component holds a
    `*`) that still matches the file."""
    if all(name_problem(character) is None for character in path):
        return path
    line = "".join("*" if name_problem(c) is not None else c for c in path)
    return line if "*" in line.rpartition("/")[2] else line + "*"


def block_lines(entries: Iterable[str], fast_root: Path | None) -> list[str]:
    """cacherr's block for these fast paths: the temporary-file pattern of each share,
    then folder lines for folders whose every file is listed, and the other files, sorted."""
    entries = set(entries)
    if fast_root is None:
        return sorted(safe_line(p) for p in entries)
    shares: set[str] = set()
    folders: set[Path] = set()
    for entry in entries:
        try:
            relative = Path(entry).relative_to(fast_root)
        except ValueError:
            continue
        if len(relative.parts) < 2:
            continue
        shares.add(relative.parts[0])
        share_top = fast_root / relative.parts[0]
        folder = Path(entry).parent
        while folder != share_top:
            folders.add(folder)
            folder = folder.parent
    seen: dict[Path, bool] = {}
    whole = {folder for folder in folders if _all_listed(folder, entries, seen)}
    # Keep only the outermost listed folders; drop the entries they cover.
    outermost = {f for f in whole if not any(parent in whole for parent in f.parents)}
    kept = [e for e in entries if not any(f in Path(e).parents for f in outermost)]
    patterns = [f"{fast_root / share}/*{TEMP_SUFFIX}" for share in shares]
    lines = [safe_line(f"{f}/") for f in outermost] + [safe_line(e) for e in kept]
    return sorted(patterns) + sorted(lines)


def _all_listed(folder: Path, entries: set[str], seen: dict[Path, bool]) -> bool:
    """True if the folder exists and everything in it is listed (cacherr's temporary
    files aside: a pattern covers them), its subfolders likewise."""
    if folder in seen:
        return seen[folder]
    answer = False
    try:
        with os.scandir(folder) as children:
            answer = True
            for child in children:
                path = Path(child.path)
                if child.name.endswith(TEMP_SUFFIX):
                    continue
                if child.is_dir(follow_symlinks=False):
                    if not _all_listed(path, entries, seen):
                        answer = False
                        break
                elif str(path) not in entries:
                    answer = False
                    break
    except OSError:
        answer = False
    seen[folder] = answer
    return answer


def covered(lines: Iterable[str], fast_path: str) -> bool:
    """True if one of the lines keeps `fast_path` on the pool, as Mover Tuning reads
    them: a pattern (a `*` in its last component) matched by `find -path` (where `*`
    spans folders and `[` is taken literally), a folder that holds it, or the path."""
    for line in lines:
        if "*" in line.rpartition("/")[2]:
            if fnmatch.fnmatchcase(fast_path, line.replace("[", "[[]")):
                return True
            continue
        entry = line.rstrip("/*")
        if fast_path == entry or fast_path.startswith(entry + "/"):
            return True
    return False


def share_sizes(lines: Iterable[str], fast_root: Path) -> dict[str, int]:
    """Bytes of `find` arguments each share's lines make in Mover Tuning (it takes the
    lines holding `/mnt/<pool>/<share>`), by share."""
    sizes: dict[str, int] = defaultdict(int)
    prefix = str(fast_root).rstrip("/") + "/"
    for line in lines:
        if prefix not in line:
            continue
        share = line.split(prefix, 1)[1].split("/", 1)[0]
        if share:
            sizes[share] += len(line.encode("utf-8", "replace")) + LINE_OVERHEAD_BYTES
    return dict(sizes)
