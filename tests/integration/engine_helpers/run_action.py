"""Run one engine action in its own process: `run_action.py WORLD_JSON LAYOUT KIND PATH [CHUNK]`.

The crash tests set CACHERR_TEST_KILL_AT to have it SIGKILL itself at a checkpoint; the
strace tests trace it. Exit 0 on success, 3 on an EngineError (printed on stderr).
"""

from __future__ import annotations

import sys
import threading

from cacherr.engine import EngineError
from cacherr.engine.signals import cancel_on_sigterm
from tests.integration.engine_helpers.world import World


def main(argv: list[str]) -> int:
    world = World.from_json(argv[1])
    layout, kind, relative_path = argv[2], argv[3], argv[4]
    options = {"chunk_size_bytes": int(argv[5])} if len(argv) > 5 else {}
    if len(argv) > 6:
        options["verify"] = argv[6]
    cancel = threading.Event()
    cancel_on_sigterm(cancel)
    engine = world.engine(layout, cancel=cancel, **options)
    try:
        if kind == "cache":
            engine.cache(relative_path)
        elif kind == "evict":
            engine.evict(relative_path)
        elif kind == "recover":
            engine.recover()
        elif kind == "idle":
            # What a cycle with nothing to move asks of the engine.
            engine.recover()
            engine.ledger.files()
            engine.fast_free_bytes()
        else:
            raise SystemExit(f"unknown kind {kind}")
    except EngineError as error:
        print(error, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
