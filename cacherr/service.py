"""The long-running service (`cacherr run`): lands with the service issue."""

import sys


def serve(config, *, lock, dry_run: bool) -> int:
    print("cacherr run: the service loop is not yet implemented; use run --once",
          file=sys.stderr)
    return 1
