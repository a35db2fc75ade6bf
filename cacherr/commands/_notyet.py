"""The answer of a command whose issue has not landed yet."""

import sys

from cacherr.commands import EXIT_FAILURE


def not_yet(command: str) -> int:
    print(f"cacherr {command}: not yet implemented in this version", file=sys.stderr)
    return EXIT_FAILURE
