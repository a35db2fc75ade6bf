"""Run one engine action of any row in its own process:
`run_row.py WORLD_JSON SPEC KIND PATH [CHUNK [VERIFY]]`, SPEC as in rows.py
("union/move/subtitles"), KIND cache | adopt | evict | recover.

With ENGINE_TEST_MOVER_LIST=FILE the mover exclusion file is kept around the action as
the cycle keeps it (cacherr/cycle/execute.py): settled from the ledger, the entry added
before a cache or adopt and removed after an eviction; the engine lists the sidecars.
The crash tests set CACHERR_TEST_KILL_AT; the strace tests trace it. Exit 0 on
success, 3 on an EngineError (printed on stderr).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from cacherr.cycle.moverlist import MoverList
from cacherr.engine import EngineError
from cacherr.engine.signals import cancel_on_sigterm
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World


def main(argv: list[str]) -> int:
    world = World.from_json(argv[1])
    spec, kind, relative_path = argv[2], argv[3], argv[4]
    options = {"chunk_size_bytes": int(argv[5])} if len(argv) > 5 else {}
    if len(argv) > 6:
        options["verify"] = argv[6]
    cancel = threading.Event()
    cancel_on_sigterm(cancel)
    engine = rows.engine(world, spec, cancel=cancel, **options)
    mover_list = None
    if os.environ.get("ENGINE_TEST_MOVER_LIST"):
        mover_list = MoverList(os.environ["ENGINE_TEST_MOVER_LIST"], rows.fast_root(world, spec))
        mover_list.rewrite(str(e.fast_path) for e in engine.ledger.files(sidecars=True))
        engine.mover_list = mover_list
    fast_path = rows.fast_root(world, spec) / relative_path
    try:
        if kind in ("cache", "adopt"):
            if mover_list is not None:
                mover_list.add(fast_path)
            try:
                getattr(engine, kind)(relative_path)
            except EngineError:
                if mover_list is not None:
                    mover_list.remove(fast_path)
                raise
        elif kind == "evict":
            engine.evict(relative_path)
            if mover_list is not None:
                mover_list.remove(fast_path)
        elif kind == "recover":
            engine.recover()
        else:
            raise SystemExit(f"unknown kind {kind}")
    except EngineError as error:
        print(error, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    sys.exit(main(sys.argv))
