"""Giving a crash state the journal and ledger of its moment, with identities that mean on
the rewritten files what they meant on the recorded ones.

A file written out for a crash state gets a new inode number and a new ctime. Each
identity the database recorded (inode, ctime) is mapped to the model's inode it named
when it was first recorded, and rewritten to that inode's new number; its ctime stays
true only if the last operation that changed the inode then is also the last one that
survived the cut (otherwise a real power cut would leave another ctime too).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.powercut.model import Replay

IDENTITY_COLUMNS = (("fast_inode", "fast_ctime_ns"), ("slow_inode", "slow_ctime_ns"))


def _identities(conn: sqlite3.Connection) -> tuple[list[tuple[int, int | None]], list[int]]:
    """The (inode, ctime) pairs and the temporary inodes the database records."""
    pairs, temps = [], []
    for (plan,) in conn.execute("SELECT plan FROM journal_actions"):
        data = json.loads(plan)
        pairs += [(data[k]["inode"], data[k].get("ctime_ns")) for k in ("slow", "fast") if data[k]]
    for (value,) in conn.execute("SELECT value FROM journal_steps WHERE value IS NOT NULL"):
        data = json.loads(value)
        if "temp_inode" in data:
            temps.append(data["temp_inode"])
        pairs += [(data[k]["inode"], data[k].get("ctime_ns")) for k in ("copy", "original") if k in data]
    for row in conn.execute("SELECT * FROM cached_files"):
        pairs += [(row[i], row[c]) for i, c in IDENTITY_COLUMNS if row[i] is not None]
    return pairs, temps


@dataclass
class Recorded:
    """For each recorded identity: the model inode it named and its last change then."""

    pairs: dict[tuple[int, int | None], tuple[str, int]] = field(default_factory=dict)
    temps: dict[int, str] = field(default_factory=dict)
    snapshot_at: dict[int, int] = field(default_factory=dict)  # snapshot → op index

    @classmethod
    def learn(cls, run: Replay, snapshots: Path) -> Recorded:
        recorded = cls()
        for index, op in enumerate(run.ops):
            if op.kind != "snapshot":
                continue
            recorded.snapshot_at[op.snapshot] = index
            tree = run.before[index]
            numbers = json.loads((snapshots / f"{op.snapshot:04d}.json").read_text())
            by_number = {n: tree.names[p] for p, n in numbers.items() if p in tree.names}
            conn = sqlite3.connect(f"file:{snapshots / f'{op.snapshot:04d}.db'}?mode=ro", uri=True)
            conn.row_factory = sqlite3.Row
            try:
                pairs, temps = _identities(conn)
            finally:
                conn.close()
            for pair in pairs:
                if pair not in recorded.pairs and pair[0] in by_number:
                    inode_id = by_number[pair[0]]
                    recorded.pairs[pair] = (inode_id, tree.inodes[inode_id].changed_by)
            for number in temps:
                if number not in recorded.temps and number in by_number:
                    recorded.temps[number] = by_number[number]
        return recorded

    def snapshot_for(self, cut: int) -> int:
        """The last snapshot taken before the cut: what the journal held then."""
        return max(s for s, at in self.snapshot_at.items() if at < cut)


def install(source: Path, state_dir: Path, recorded: Recorded, tree, stats: dict) -> None:
    """Copy the snapshot database into `state_dir` with its identities rewritten for the
    files written out (`stats`: inode id → os.stat_result) of the crash state `tree`."""
    for name in os.listdir(state_dir) if state_dir.exists() else []:
        if name.startswith("cacherr.db"):
            os.unlink(state_dir / name)
    state_dir.mkdir(parents=True, exist_ok=True)
    target = sqlite3.connect(state_dir / "cacherr.db")
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as snapshot:
        snapshot.backup(target)
    target.row_factory = sqlite3.Row

    def pair(inode: int, ctime: int | None) -> tuple[int, int | None]:
        found = recorded.pairs.get((inode, ctime))
        if found is None:
            return 0, ctime  # a file gone before the action (a moved original): matches nothing
        inode_id, changed_by = found
        if inode_id not in stats:
            return 0, ctime  # gone in this state: matches nothing
        st = stats[inode_id]
        true = tree.inodes[inode_id].changed_by == changed_by
        return st.st_ino, (st.st_ctime_ns if true else st.st_ctime_ns + 1) if ctime is not None else None

    def identity(data: dict | None) -> dict | None:
        if not data:
            return data
        data["inode"], data["ctime_ns"] = pair(data["inode"], data.get("ctime_ns"))
        return data

    with target:
        for row in target.execute("SELECT id, plan FROM journal_actions").fetchall():
            plan = json.loads(row["plan"])
            plan["slow"], plan["fast"] = identity(plan["slow"]), identity(plan["fast"])
            target.execute("UPDATE journal_actions SET plan = ? WHERE id = ?",
                           (json.dumps(plan), row["id"]))  # fmt: skip
        for row in target.execute(
            "SELECT rowid, value FROM journal_steps WHERE value IS NOT NULL"
        ).fetchall():
            value = json.loads(row["value"])
            if "temp_inode" in value:
                inode_id = recorded.temps[value["temp_inode"]]
                value["temp_inode"] = stats[inode_id].st_ino if inode_id in stats else 0
            for key in ("copy", "original"):
                if key in value:
                    value[key] = identity(value[key])
            target.execute("UPDATE journal_steps SET value = ? WHERE rowid = ?",
                           (json.dumps(value), row["rowid"]))  # fmt: skip
        for row in target.execute("SELECT * FROM cached_files").fetchall():
            for inode_column, ctime_column in IDENTITY_COLUMNS:
                if row[inode_column] is None:
                    continue
                inode, ctime = pair(row[inode_column], row[ctime_column])
                target.execute(
                    f"UPDATE cached_files SET {inode_column} = ?, {ctime_column} = ?"
                    " WHERE relative_path = ?",
                    (inode, ctime, row["relative_path"]),
                )
    target.close()
