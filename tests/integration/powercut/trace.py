"""strace's record of an action, as the file-system operations the explorer replays.

Only operations on paths under the watched folders are kept, plus the database
snapshots (record.py) that say what the journal held at each moment. Kernel copies keep
the range they moved (read from the model's own files as the trace is replayed); a
write(2) from user space (verify: checksum) keeps the bytes strace printed, so a crash
state can be written out exactly.

Threads (verify: checksum fdatasyncs the copy from its re-read thread while the copy
goes on) interleave in strace's output as `<unfinished ...>` and `<... resumed>` halves:
a syscall counts where it finished, and a sync covers only what had finished before it
began (what finished while it ran may or may not have reached the disk).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

TRACED = (
    "trace=openat,copy_file_range,sendfile,fsync,fdatasync,rename,renameat,renameat2,"
    "unlink,unlinkat,link,linkat,symlink,symlinkat,mkdir,mkdirat,rmdir,fchown,fchownat,"
    "chown,lchown,fchmod,fchmodat,chmod,utimensat,fsetxattr,setxattr,lsetxattr,"
    # Every other way to change a file's bytes: a watched path in one that is not
    # understood stops the parse instead of being missed.
    "write,pwrite64,writev,pwritev,pwritev2,truncate,ftruncate,fallocate"
)
WRITE_BYTES = 1 << 20  # strace prints up to this much of a write (more: not understood)
STRACE_ARGS = ["-f", "-y", "-qq", "-s", str(WRITE_BYTES), "-e", TRACED]


@dataclass(frozen=True)
class Op:
    """One operation. `kind`: creat | write | fsync | rename | unlink | link | symlink |
    mkdir | rmdir | chmod | attr | utime | snapshot. `path` is what it acts on; `other`
    the second path (rename/link target, a kernel copy's source) or a symlink's text;
    `flags` RENAME_NOREPLACE / RENAME_EXCHANGE, or fdatasync (data only); `offset`/`length`
    a kernel copy's source range, or where in `path` a write(2) put `data`; `during` (a
    sync) how many of the ops just before it finished while it ran (it does not cover
    them)."""

    kind: str
    path: str = ""
    other: str = ""
    flags: str = ""
    offset: int = 0
    length: int = 0
    mode: int = 0
    mtime_ns: int | None = None
    snapshot: int = -1
    data: bytes = b""
    during: int = 0


_AT = r"(?:AT_FDCWD(?:<[^>]*>)?|\d+<[^>]*>)"
_S = r'"((?:[^"\\]|\\.)*)"'
_PATTERNS = [
    ("openat", re.compile(rf"openat\({_AT}, {_S}, ([A-Z_|]+)(?:, (0\d*))?\) = (\d+)<")),
    ("copy", re.compile(r"copy_file_range\((\d+)<([^>]*)>, NULL, (\d+)<([^>]*)>, NULL, \d+, 0\) = (\d+)")),
    ("sendfile", re.compile(r"sendfile\((\d+)<([^>]*)>, (\d+)<([^>]*)>, NULL, \d+\) = (\d+)")),
    ("fsync", re.compile(r"f(data)?sync\((\d+)<([^>]*)>\) = 0")),
    ("write", re.compile(rf"write\((\d+)<([^>]*)>, {_S}, (\d+)\) = (\d+)$")),
    ("renameat2", re.compile(rf"renameat2\({_AT}, {_S}, {_AT}, {_S}, (\w+)\) = 0")),
    ("renameat", re.compile(rf"renameat\({_AT}, {_S}, {_AT}, {_S}\) = 0")),
    ("rename", re.compile(rf"rename\({_S}, {_S}\) = 0")),
    ("unlinkat", re.compile(rf"unlinkat\({_AT}, {_S}, (\w+)\) = 0")),
    ("unlink", re.compile(rf"unlink\({_S}\) = 0")),
    ("rmdir", re.compile(rf"rmdir\({_S}\) = 0")),
    ("linkat", re.compile(rf"linkat\({_AT}, {_S}, {_AT}, {_S}, \w+\) = 0")),
    ("link", re.compile(rf"link\({_S}, {_S}\) = 0")),
    ("symlinkat", re.compile(rf"symlinkat\({_S}, {_AT}, {_S}\) = 0")),
    ("symlink", re.compile(rf"symlink\({_S}, {_S}\) = 0")),
    ("mkdirat", re.compile(rf"mkdirat\({_AT}, {_S}, (0\d*)\) = 0")),
    ("mkdir", re.compile(rf"mkdir\({_S}, (0\d*)\) = 0")),
    ("fchmod", re.compile(r"fchmod\(\d+<([^>]*)>, (0\d*)\) = 0")),
    ("chmodat", re.compile(rf"fchmodat\({_AT}, {_S}, (0\d*)(?:, \w+)?\) = 0")),
    ("chmod", re.compile(rf"chmod\({_S}, (0\d*)\) = 0")),
    ("fattr", re.compile(r"f(?:chown|setxattr)\(\d+<([^>]*)>,")),
    ("attr", re.compile(rf"(?:l?chown|fchownat|l?setxattr)\((?:{_AT}, )?{_S},")),
    ("futime", re.compile(r"utimensat\(\d+<([^>]*)>, NULL, \[\{[^]]*?\}.*?, \{tv_sec=(\d+), tv_nsec=(\d+)\}")),
    ("utime", re.compile(rf"utimensat\({_AT}, {_S}, \[\{{[^]]*?\}}.*?, \{{tv_sec=(\d+), tv_nsec=(\d+)\}}")),
]


def _unescape(text: str) -> str:
    return _bytes(text).decode("utf-8")


def _bytes(text: str) -> bytes:
    """The bytes of a string as strace quotes it (C escapes, octal for the rest)."""
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


_WRITES = re.compile(r"(?:write|pwrite64|p?writev2?|ftruncate|fallocate)\(\d+<([^>]*)>")
_PID = re.compile(r"^(\d+) +")
_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"<\.\.\. (\w+) resumed>")


def _joined(
    lines: list[str], watched: list[str], count: Callable[[], int]
) -> Iterator[tuple[str, int]]:
    """Given strace's lines, yield each whole syscall line with `count()` as it was when
    the syscall began: one split by another thread's line comes where it ended. Raise
    ValueError if the process was killed during a change to a watched path."""
    started_by: dict[str, tuple[str, int]] = {}  # pid → the first half, count() then
    for line in lines:
        found = _PID.match(line)
        pid, line = (found.group(1), line[found.end():]) if found else ("", line)
        if line.endswith(_UNFINISHED):
            started_by[pid] = (line[: -len(_UNFINISHED)], count())
            continue
        resumed = _RESUMED.match(line)
        began = count()
        if resumed:
            head, began = started_by.pop(pid, ("", 0))
            if not head.startswith(resumed.group(1) + "("):
                raise ValueError(f"a resumed syscall without its start: {line}")
            line = head + line[resumed.end():]
        head, equals, result = line.rpartition(" = ")  # strace pads before the result
        yield (head.rstrip() + equals + result if equals else line), began
    for head, _ in started_by.values():
        # A sync that never returned made nothing durable; any other change may have
        # done anything.
        if any(w in head for w in watched) and not head.startswith(("fsync(", "fdatasync(")):
            raise ValueError(f"killed during a syscall on a watched path: {head}")


def parse(lines: list[str], watched: list[str], snapshots: str) -> list[Op]:
    """Given strace's lines, the watched folders and the snapshot folder, return the ops
    in order. Raise ValueError on a line about a watched path that is not understood."""
    # The folders holding the watched ones count too: their fsyncs make a new watched
    # folder's name durable.
    around = {os.path.dirname(w) for w in watched}
    inside = lambda path: path in around or any(  # noqa: E731
        path == w or path.startswith(w + "/") for w in watched)
    positions: dict[int, int] = {}  # fd → file position (copies use the fds' positions)
    ops: list[Op] = []
    for line, began in _joined(lines, watched, lambda: len(ops)):
        for name, pattern in _PATTERNS:
            # At the start of the line (its pid taken off): `link` never matches inside
            # `symlink`, and a write's bytes are never searched.
            found = pattern.match(line)
            if found:
                op = _op(name, found, positions, snapshots)
                if op is not None and (op.kind == "snapshot" or inside(op.path)):
                    if op.kind == "fsync":  # it covers only what finished before it began
                        op = replace(op, during=len(ops) - began)
                    ops.append(op)
                break
        else:
            # A write's bytes may name a watched path (the journal's pages do): what it
            # is about is the file its descriptor names.
            by_fd = _WRITES.match(line)
            about = by_fd.group(1) if by_fd else line
            if any(w in about for w in watched) and "= -1" not in line:
                raise ValueError(f"not understood: {line}")
    return ops


def _op(name: str, found: re.Match, positions: dict[int, int], snapshots: str) -> Op | None:
    g = found.groups()
    if name == "openat":
        path, flags, mode, fd = _unescape(g[0]), g[1], g[2], int(g[3])
        positions[fd] = 0
        if path.startswith(snapshots + "/") and path.endswith(".db") and "O_CREAT" in flags:
            return Op("snapshot", snapshot=int(path.rsplit("/", 1)[1][:-3]))
        if "O_CREAT" in flags:
            return Op("creat", path, mode=int(mode or "0644", 8))
        return None
    if name in ("copy", "sendfile"):
        if name == "copy":
            in_fd, source, out_fd, target, moved = g
        else:
            out_fd, target, in_fd, source, moved = g
        start = positions.get(int(in_fd), 0)
        positions[int(in_fd)] = start + int(moved)
        positions[int(out_fd)] = positions.get(int(out_fd), 0) + int(moved)
        return Op("write", target, source, offset=start, length=int(moved))
    if name == "fsync":
        return Op("fsync", g[2], flags="fdatasync" if g[0] else "")
    if name == "write":
        fd, path, text, written = int(g[0]), g[1], g[2], int(g[4])
        at = positions.get(fd, 0)
        positions[fd] = at + written
        return Op("write", path, offset=at, length=written, data=_bytes(text)[:written])
    if name in ("renameat2", "renameat", "rename"):
        flags = g[2] if name == "renameat2" else ""
        return Op("rename", _unescape(g[0]), _unescape(g[1]), flags=flags)
    if name == "unlinkat":
        return Op("rmdir" if "AT_REMOVEDIR" in g[1] else "unlink", _unescape(g[0]))
    if name in ("unlink", "rmdir"):
        return Op(name, _unescape(g[0]))
    if name in ("linkat", "link"):
        return Op("link", _unescape(g[1]), _unescape(g[0]))  # path: the new name
    if name == "symlinkat" or name == "symlink":
        return Op("symlink", _unescape(g[1]), _unescape(g[0]))
    if name in ("mkdirat", "mkdir"):
        return Op("mkdir", _unescape(g[0]), mode=int(g[1], 8))
    if name in ("fchmod", "chmodat", "chmod"):
        return Op("chmod", _unescape(g[0]) if name != "fchmod" else g[0], mode=int(g[1], 8))
    if name == "fattr":
        return Op("attr", g[0])
    if name == "attr":
        return Op("attr", _unescape(g[0]))
    if name in ("futime", "utime"):
        path = g[0] if name == "futime" else _unescape(g[0])
        return Op("utime", path, mtime_ns=int(g[1]) * 1_000_000_000 + int(g[2]))
    raise AssertionError(name)
