"""SPEC §4's table: the row (step sequence and recovery) of each layout and original."""

from __future__ import annotations

from cacherr.engine.rows import SymlinkBackup, UnionShadow
from cacherr.engine.rows_backup_move import SymlinkMove, UnionBackup, UnionMove

ROWS = {
    (row.layout, row.original): row
    for row in (UnionShadow(), UnionBackup(), UnionMove(), SymlinkBackup(), SymlinkMove())
}
