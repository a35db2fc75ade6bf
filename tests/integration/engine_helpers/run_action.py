"""Run one engine action in its own process: `run_action.py WORLD_JSON LAYOUT KIND PATH [CHUNK]`.

The crash tests set CACHERR_TEST_KILL_AT to have it SIGKILL itself at a checkpoint; the
strace tests trace it. Exit 0 on success, 3 on an EngineError (printed on stderr).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path

from cacherr.engine import EngineError
from cacherr.engine.signals import cancel_on_sigterm
from tests.integration.engine_helpers.world import World

AUDITED = {
    "open": 0,
    "os.rename": 0,
    "os.remove": 0,
    "os.link": 0,
    "os.symlink": 1,
    "os.mkdir": 0,
    "os.rmdir": 0,
    "os.chmod": 0,
    "os.chown": 0,
    "os.utime": 0,
    "os.listdir": 0,
    "os.scandir": 0,
    "os.truncate": 0,
    "os.getxattr": 0,
    "os.setxattr": 0,
    "os.listxattr": 0,
    "os.removexattr": 0,
    "sqlite3.connect": 0,
}  # event -> index of the path argument (os.symlink's first is the link's text, not a path)


def record_paths(out_file: str) -> None:
    """Append every path the process opens or changes from now on to `out_file`."""
    seen: set[str] = set()

    def hook(event: str, args: tuple) -> None:
        if event in AUDITED and len(args) > AUDITED[event]:
            path = args[AUDITED[event]]
            if isinstance(path, (str, bytes, os.PathLike)):
                seen.add(os.path.abspath(os.fsdecode(path)))
        if event == "os.rename" and isinstance(args[1], (str, bytes, os.PathLike)):
            seen.add(os.path.abspath(os.fsdecode(args[1])))

    sys.addaudithook(hook)
    atexit.register(lambda: Path(out_file).write_text("\n".join(sorted(seen))))


def main(argv: list[str]) -> int:
    if os.environ.get("ENGINE_TEST_AUDIT_FILE"):
        record_paths(os.environ["ENGINE_TEST_AUDIT_FILE"])
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
