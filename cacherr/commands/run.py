"""`cacherr run [--once] [--dry-run]`: the service, or one cycle.

The cycle itself lands with the planner; what is here already is the part every run
needs first: a valid config, a safe state directory, and the run lock.
"""

from __future__ import annotations

import logging
import sys

from cacherr.commands import EXIT_FAILURE, EXIT_USAGE
from cacherr.commands.config_file import ConfigUnavailable, load_config
from cacherr.state.lock import AlreadyRunning, RunLock
from cacherr.state.statedir import StateDirError, check_state_dir

log = logging.getLogger(__name__)


def run(args) -> int:
    try:
        config = load_config(args)
    except ConfigUnavailable:
        return EXIT_USAGE
    try:
        check = check_state_dir(config.state_dir)
    except StateDirError as error:
        print(f"cacherr: {error}", file=sys.stderr)
        return EXIT_USAGE
    for warning in check.warnings:
        log.warning("%s", warning)
    lock = RunLock(config.state_dir)
    try:
        lock.acquire()
    except AlreadyRunning as error:
        print(f"cacherr: {error}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        print("cacherr run: the cycle is not yet implemented in this version", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        lock.release()
