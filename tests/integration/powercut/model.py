"""A model of the watched folders that replays recorded operations, and the crash states
a power cut could leave after any prefix of them.

Persistence model (ALICE's abstract model for journalling file systems, made harsher
where it is cheap): an operation is durable once a later fsync covers it — fsync of a
folder covers the names created, renamed and removed in it; fsync of a file covers its
data and attributes, fdatasync only its data; a sync covers only what had finished
before it began (another thread may write while it runs). Of what is not durable at the
moment of the cut, any part may be lost: each folder keeps an ordered prefix of its name
operations (a folder's entries are journalled in order), each file keeps a prefix of its
unsynced writes, and its unsynced attributes are kept or lost whole, each independently
of everything else.

Inodes keep the index of the last operation that changed them (what their ctime
reflects): a recorded ctime is the real one after a cut exactly when that operation is
also the last one that survived.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.integration.powercut.trace import Op


@dataclass
class Inode:
    kind: str  # file | dir | link
    data: bytes = b""
    mode: int = 0o644
    mtime_ns: int | None = None
    target: str = ""
    changed_by: int = -1  # index of the last operation that changed it (-1: before)


@dataclass
class Tree:
    """Names → inode ids, and the inodes (ids are stable across replays of one trace)."""

    names: dict[str, str] = field(default_factory=dict)
    inodes: dict[str, Inode] = field(default_factory=dict)
    fixed: frozenset[str] = frozenset()  # the folders holding the watched ones: always there

    def copy(self) -> Tree:
        inodes = {k: replace(v) for k, v in self.inodes.items()}
        return Tree(dict(self.names), inodes, self.fixed)

    def parent_is_dir(self, path: str) -> bool:
        folder = os.path.dirname(path)
        if folder in self.fixed:
            return True
        parent = self.names.get(folder)
        return parent is not None and self.inodes[parent].kind == "dir"

    def apply(self, index: int, op: Op, source: Tree | None = None) -> bool:
        """Apply `op` (the `index`th of the trace) if it can apply here; return whether it
        did. A write reads its bytes from `source` (the live replay) when given."""
        names, inodes = self.names, self.inodes
        kind, path = op.kind, op.path
        if kind in ("creat", "mkdir", "symlink"):
            if path in names or not self.parent_is_dir(path):
                return False
            inode_id = f"op{index}"
            inodes[inode_id] = Inode(
                {"creat": "file", "mkdir": "dir", "symlink": "link"}[kind],
                mode=op.mode or 0o644, target=op.other, changed_by=index,
            )  # fmt: skip
            names[path] = inode_id
            return True
        if kind in ("fsync", "snapshot"):
            return True
        if kind == "rename":
            if op.other.startswith(path + "/"):
                return False
            if path not in names or not self.parent_is_dir(op.other):
                return False
            if op.flags == "RENAME_EXCHANGE":
                if op.other not in names:
                    return False
                names[path], names[op.other] = names[op.other], names[path]
                inodes[names[path]].changed_by = index
            else:
                if op.flags == "RENAME_NOREPLACE" and op.other in names:
                    return False
                replaced = names.get(op.other)
                if replaced is not None:
                    inodes[replaced].changed_by = index
                names[op.other] = names.pop(path)
            inodes[names[op.other]].changed_by = index
            self._forget_unnamed()
            return True
        if kind in ("unlink", "rmdir"):
            if path not in names:
                return False
            if kind == "rmdir" and any(p.startswith(path + "/") for p in names):
                return False
            inodes[names.pop(path)].changed_by = index
            self._forget_unnamed()
            return True
        if kind == "link":
            if op.other not in names or path in names or not self.parent_is_dir(path):
                return False
            names[path] = names[op.other]
            inodes[names[path]].changed_by = index
            return True
        inode = inodes.get(names.get(path, ""))
        if inode is None:
            return False
        if kind == "write" and not op.other:  # write(2): its bytes, where it put them
            start = inode.data.ljust(op.offset, b"\0")  # past the end: a hole reads as zeros
            inode.data = start[: op.offset] + op.data + start[op.offset + len(op.data) :]
        elif kind == "write":  # a kernel copy: the range of its source it moved
            bytes_from = source if source is not None else self
            read = bytes_from.inodes[bytes_from.names[op.other]].data
            inode.data = inode.data + read[op.offset : op.offset + op.length]
        elif kind == "chmod":
            inode.mode = op.mode
        elif kind == "utime":
            inode.mtime_ns = op.mtime_ns
        inode.changed_by = index
        return True

    def _forget_unnamed(self) -> None:
        named = set(self.names.values())
        for inode_id in [k for k in self.inodes if k not in named]:
            del self.inodes[inode_id]


def scan(folders: list[str]) -> Tree:
    """The tree as it is on disk now (hardlinks share an inode id)."""
    tree = Tree(fixed=frozenset(os.path.dirname(top) for top in folders))
    by_number: dict[int, str] = {}
    for top in folders:
        if not os.path.lexists(top):
            continue
        for path in [top] + [
            os.path.join(folder, name)
            for folder, subfolders, files in os.walk(top)
            for name in subfolders + files
        ]:
            st = os.lstat(path)
            inode_id = by_number.get(st.st_ino) or f"initial{st.st_ino}"
            by_number[st.st_ino] = inode_id
            if inode_id not in tree.inodes:
                if os.path.islink(path):
                    inode = Inode("link", target=os.readlink(path))
                elif os.path.isdir(path):
                    inode = Inode("dir", mode=st.st_mode & 0o7777)
                else:
                    inode = Inode("file", Path(path).read_bytes(), st.st_mode & 0o7777,
                                  st.st_mtime_ns)  # fmt: skip
                tree.inodes[inode_id] = inode
            tree.names[path] = inode_id
    return tree


@dataclass
class Replay:
    """The trace replayed live: the tree before each op, and what each op touched."""

    ops: list[Op]
    before: list[Tree]  # before[i]: the tree before op i (before[len]: after the last)
    durable_at: list[float]  # index of the fsync that made op i durable (inf: none)
    chain: list[str]  # what op i belongs to: "dir:<folder>", "data:<inode>", "attr:<inode>"


def replay(initial: Tree, ops: list[Op]) -> Replay:
    """Replay every op on a copy of `initial`; note where each one becomes durable."""
    live = initial.copy()
    before, chain = [], []
    for index, op in enumerate(ops):
        before.append(live.copy())
        if op.kind in ("creat", "mkdir", "symlink", "rename", "unlink", "rmdir", "link"):
            folder = os.path.dirname(op.path)
            if op.kind in ("rename",) and os.path.dirname(op.other) != folder:
                raise ValueError(f"a rename across folders is not modelled: {op}")
            chain.append(f"dir:{folder}")
        elif op.kind == "write":
            chain.append(f"data:{live.names.get(op.path)}")
        elif op.kind in ("chmod", "attr", "utime"):
            chain.append(f"attr:{live.names.get(op.path)}")
        else:
            chain.append("")
        if not live.apply(index, op) and op.kind not in ("fsync", "snapshot"):
            raise ValueError(f"op {index} {op} does not apply to its own live replay")
    before.append(live.copy())
    durable_at = [float("inf")] * len(ops)
    for j, op in enumerate(ops):
        if op.kind != "fsync":
            continue
        target = before[j].names.get(op.path)
        if op.path in before[j].fixed:
            covers = {f"dir:{op.path}"}
        elif target is None:
            continue
        elif before[j].inodes[target].kind == "dir":
            covers = {f"dir:{op.path}", f"attr:{target}"}
        elif op.flags == "fdatasync":  # the data (and size), not mode, owner or times
            covers = {f"data:{target}"}
        else:
            covers = {f"data:{target}", f"attr:{target}"}
        for i in range(j - op.during):  # what finished while it ran may not be covered
            if chain[i] in covers and durable_at[i] == float("inf"):
                durable_at[i] = j
    return Replay(ops, before, durable_at, chain)


@dataclass(frozen=True)
class CrashState:
    """What survives a cut after `cut` ops: the ops kept (indices), and the tree."""

    cut: int
    kept: tuple[int, ...]
    tree: Tree = field(compare=False, hash=False)

    def key(self, snapshot: int) -> tuple:
        return (snapshot, tuple(sorted(
            (path, inode.kind, inode.data, inode.mode, inode.mtime_ns, inode.target,
             inode_id, inode.changed_by)
            for path, inode_id in self.tree.names.items()
            for inode in [self.tree.inodes[inode_id]]
        )))  # fmt: skip


def crash_states(initial: Tree, run: Replay, cut: int) -> Iterator[CrashState]:
    """Every state a power cut after the first `cut` ops can leave."""
    durable = [i for i in range(cut) if run.durable_at[i] < cut and run.ops[i].kind != "fsync"]
    loose = [i for i in range(cut) if run.durable_at[i] >= cut and run.chain[i]]
    folders: dict[str, list[int]] = {}
    groups: dict[str, list[int]] = {}
    for i in loose:
        (folders if run.chain[i].startswith("dir:") else groups).setdefault(run.chain[i], []).append(i)
    folder_choices = [[chain[:n] for n in range(len(chain) + 1)] for chain in folders.values()]
    # A file's unsynced data may survive in part (the first writes), its attributes whole.
    group_choices = [
        [members[:n] for n in range(len(members) + 1)] if key.startswith("data:")
        else [[], members]
        for key, members in groups.items()
    ]  # fmt: skip
    for choice in itertools.product(*folder_choices, *group_choices):
        kept = sorted(durable + [i for part in choice for i in part])
        tree = initial.copy()
        applied = tuple(i for i in kept if tree.apply(i, run.ops[i], run.before[i]))
        yield CrashState(cut, applied, tree)


def sample(states: list, count: int, seed: int) -> list:
    """A seeded sample of `count` states (all of them if there are not more)."""
    if len(states) <= count:
        return states
    return random.Random(seed).sample(states, count)


def write_out(tree: Tree, folders: list[str]) -> dict[str, os.stat_result]:
    """Make the watched folders hold exactly `tree`; return each inode id's stat."""
    for top in folders:
        if os.path.lexists(top):
            shutil.rmtree(top)
    made: dict[str, str] = {}
    for path in sorted(tree.names, key=lambda p: (p.count("/"), p)):
        inode_id = tree.names[path]
        inode = tree.inodes[inode_id]
        if inode_id in made:
            os.link(made[inode_id], path, follow_symlinks=False)
            continue
        made[inode_id] = path
        if inode.kind == "dir":
            os.mkdir(path, 0o755)
        elif inode.kind == "link":
            os.symlink(inode.target, path)
        else:
            with open(path, "wb") as handle:
                handle.write(inode.data)
            os.chmod(path, inode.mode)
            if inode.mtime_ns is not None:
                os.utime(path, ns=(inode.mtime_ns, inode.mtime_ns))
    for path in sorted(tree.names, key=lambda p: -p.count("/")):
        inode = tree.inodes[tree.names[path]]
        if inode.kind == "dir":
            os.chmod(path, inode.mode)
    return {inode_id: os.lstat(path) for inode_id, path in made.items()}
