"""`cacherr ls [--user U] [--rule R] [--format table|json|csv]`: what is cached, why,
for whom, since when, how big. Read-only: works while a service runs."""

from __future__ import annotations

import csv
import json
import sys
import time

from cacherr.commands import EXIT_OK, EXIT_USAGE
from cacherr.commands.config_file import ConfigUnavailable, load_config
from cacherr.commands.plan import open_ledger_read_only, print_windows
from cacherr.config.units import format_bytes
from cacherr.cycle.listing import cached_files, filtered

COLUMNS = ("path", "size_bytes", "kind", "rules", "users", "since", "host_path")


def run(args) -> int:
    try:
        config = load_config(args, offline=True)
    except ConfigUnavailable:
        return EXIT_USAGE
    ledger = open_ledger_read_only(config.state_dir)
    try:
        listing = filtered(cached_files(config, ledger), user=args.user, rule=args.rule)
        windows = [dict(w, users=w["users"].split(", ")) for w in ledger.lookahead()]
        windows = [w for w in windows if (args.rule is None or w["rule"] == args.rule) and
                   (args.user is None or args.user.casefold() in map(str.casefold, w["users"]))]
    finally:
        ledger.close()
    if args.format == "json":
        json.dump(listing, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(COLUMNS)
        for entry in listing:
            writer.writerow([";".join(v) if isinstance(v, list) else v
                             for v in (entry[c] for c in COLUMNS)])
    else:
        if listing:
            print(_row("SIZE", "KIND", "SINCE", "RULES", "USERS", "PATH"))
        for entry in listing:
            since = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["since"]))
            print(_row(format_bytes(entry["size_bytes"]), entry["kind"], since,
                       ",".join(entry["rules"]) or "-", ",".join(entry["users"]) or "-",
                       entry["path"]))
        print_windows(windows)
        total = sum(entry["size_bytes"] for entry in listing)
        print(f"{len(listing)} files, {format_bytes(total)}", file=sys.stderr)
    return EXIT_OK


def _row(size: str, kind: str, since: str, rules: str, users: str, path: str) -> str:
    """One line of the table; PATH is what `cacherr evict` takes."""
    return f"{size:>10}  {kind:<7} {since:<16}  {rules:<20} {users:<16} {path}"
