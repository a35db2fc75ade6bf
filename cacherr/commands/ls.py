"""`cacherr ls`: see SPEC §5."""

from cacherr.commands._notyet import not_yet


def run(args) -> int:
    return not_yet("ls")
