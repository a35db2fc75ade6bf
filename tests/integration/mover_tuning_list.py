"""Inside test_mover_tuning's namespace: put the files on the pool and write cacherr's
list for them with cacherr's own MoverList (`mover_tuning_list.py FILES_JSON`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cacherr.cycle.moverlist import MoverList

POOL = Path("/mnt/cache")
LIST = Path("/boot/config/plugins/cacherr/mover-exclude.txt")


def main(argv: list[str]) -> int:
    files = json.loads(Path(argv[1]).read_text())
    for rel in files["cached"] + files["not_cached"]:
        (POOL / rel).parent.mkdir(parents=True, exist_ok=True)
        (POOL / rel).write_bytes(rel.encode())
    copying = POOL / files["in_progress"]
    copying.parent.mkdir(parents=True, exist_ok=True)
    copying.with_name(f".{copying.name}.cacherr-tmp").write_bytes(b"half a copy")
    for folder in [POOL / "Movies", *(p for p in POOL.rglob("*") if p.is_dir())]:
        folder.chmod(0o777)  # as Unraid's shares are
    MoverList(LIST, POOL).rewrite([POOL / rel for rel in files["cached"]] + [copying])
    print(LIST.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
