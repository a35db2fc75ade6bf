"""`cacherr doctor [--fix]`: check the host and audit the cache; print each fix.

Exit 0 when nothing is a problem (warnings allowed), 1 otherwise. Without `--fix` it
changes nothing; with it, only the repairs that are safe by construction.
"""

from __future__ import annotations

import sys

from cacherr.commands import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from cacherr.commands.config_file import ConfigUnavailable, load_config
from cacherr.commands.plan import open_ledger_read_only
from cacherr.doctor import audit, container_checks, host_checks
from cacherr.host.container import how_to_stop_first
from cacherr.state.ledger import Ledger
from cacherr.state.lock import AlreadyRunning, RunLock


def run(args) -> int:
    try:
        config = load_config(args)
    except ConfigUnavailable:
        return EXIT_USAGE
    findings = []
    plex, folders = host_checks.check_plex(config)
    findings += plex
    findings += host_checks.check_paths(config, folders)
    findings += host_checks.check_branches(config)
    findings += host_checks.check_state(config)
    findings += host_checks.check_unraid(config)
    findings += container_checks.check_container(config)
    lock = RunLock(config.state_dir)
    fix = args.fix
    if fix:
        try:
            lock.acquire()
        except AlreadyRunning:
            print(f"cacherr doctor --fix: a service is running; "
                  f"{how_to_stop_first('doctor --fix')} (read-only checks follow)",
                  file=sys.stderr)
            fix = False
    try:
        ledger = Ledger.open(config.state_dir) if fix else open_ledger_read_only(config.state_dir)
        try:
            findings += audit.audit(config, ledger, fix=fix)
        finally:
            ledger.close()
    finally:
        lock.release()
    for finding in findings:
        print(finding.format())
    problems = sum(1 for f in findings if f.level == "problem")
    warnings = sum(1 for f in findings if f.level == "warning")
    print(f"{problems} problem(s), {warnings} warning(s)", file=sys.stderr)
    return EXIT_FAILURE if problems else EXIT_OK
