"""`cacherr validate [--offline]`: check the rules file; exit 2 listing every problem."""

from __future__ import annotations

import sys

from cacherr.commands import EXIT_OK, EXIT_USAGE
from cacherr.commands.config_file import ConfigUnavailable, load_config


def run(args) -> int:
    try:
        config = load_config(args, offline=args.offline)
    except ConfigUnavailable:
        return EXIT_USAGE
    checked = "schema and meaning" if args.offline else "schema, meaning and this host"
    print(f"{config.source_path}: valid ({len(config.rules)} rules; {checked})",
          file=sys.stderr)
    return EXIT_OK
