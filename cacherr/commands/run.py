"""`cacherr run [--once] [--dry-run]`: the service, or one cycle.

Every run needs a valid config, a safe state directory and the run lock; then the engine
recovers whatever a crash left unfinished, before anything else happens.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from cacherr.commands import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, sources_report
from cacherr.commands.config_file import ConfigUnavailable, load_config
from cacherr.cycle.once import make_engine, run_cycle, settle_mover_list
from cacherr.cycle.progress import Progress
from cacherr.logs import print_summary
from cacherr.notify.notifier import Notifier
from cacherr.state.ledger import Ledger
from cacherr.state.lock import AlreadyRunning, RunLock
from cacherr.state.statedir import StateDirError, check_state_dir

log = logging.getLogger(__name__)

# Apprise gives each service 4 s; a cron job should not hang on a dead receiver longer.
NOTIFY_TIMEOUT_SECONDS = 30


def run(args) -> int:
    if getattr(args, "wait_for_rules", False) and not args.once:
        try:
            config = _wait_for_rules(args)
        except OSError as error:  # the address to answer /health on is taken
            print(f"cacherr: cannot serve /health while waiting for the rules: {error}",
                  file=sys.stderr)
            return EXIT_FAILURE
        if config is None:
            return EXIT_OK
    else:
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
        if not args.once:
            from cacherr.service import serve

            return serve(config, lock=lock, dry_run=args.dry_run or config.dry_run)
        return _once(config, dry_run=args.dry_run or config.dry_run)
    finally:
        lock.release()


def _wait_for_rules(args):
    """The Config once the rules file is valid, or None if stopped first (cacherr.waiting)."""
    from cacherr.config import loader
    from cacherr.waiting import RulesWaiter

    try:
        path = loader.discover(args.config)
    except loader.ConfigNotFound:
        path = loader.DEFAULT_LOCATIONS[0]
    return RulesWaiter(path).wait()


def _once(config, *, dry_run: bool) -> int:
    cancel = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    notifier = Notifier(config.notify)
    ledger = Ledger.open(config.state_dir)
    try:
        progress = Progress()
        engine = make_engine(config, ledger, cancel=cancel, progress=progress)
        recovered = engine.recover()
        for action in recovered:
            log.info("recovered: %s", action)
        mover_list = None if dry_run else settle_mover_list(config, ledger)
        result = run_cycle(config, ledger, engine, dry_run=dry_run, cancel=cancel,
                           on_start=progress.start, mover_list=mover_list)
    finally:
        ledger.close()
        signal.signal(signal.SIGTERM, previous)
    report = result.report
    for line in sources_report.lines(report.failed_sources):
        log.error("source failed: %s", line)
    # The same events as the service: cache_full from the plan, summary and error from
    # what was carried out (a dry run carries out nothing).
    notifier.plan_made(result.plan)
    if not dry_run:
        notifier.transfers_done(report)
    if not notifier.flush(timeout_seconds=NOTIFY_TIMEOUT_SECONDS):
        log.warning("notifications still unsent after %d s; giving up",
                    NOTIFY_TIMEOUT_SECONDS)
    notifier.close(timeout_seconds=1.0)
    print_summary(("dry run: " if dry_run else "") + report.summary(), report.as_dict())
    return EXIT_OK if report.ok else EXIT_FAILURE
