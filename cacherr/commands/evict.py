"""`cacherr evict PATH... | --all [--hold D]`: put files back now, verified.

When a service holds the lock, the request goes to it over HTTP (it owns the engine);
otherwise this command takes the lock and evicts itself. `--all` is the uninstall path.
"""

from __future__ import annotations

import sys

from cacherr.commands import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from cacherr.commands.config_file import ConfigUnavailable, load_config
from cacherr.config.units import parse_duration
from cacherr.cycle.evicting import UnknownPath, evict_paths, resolve
from cacherr.cycle.once import make_engine, settle_mover_list
from cacherr.state.ledger import Ledger
from cacherr.state.lock import AlreadyRunning, RunLock


def run(args) -> int:
    try:
        config = load_config(args, offline=True)
    except ConfigUnavailable:
        return EXIT_USAGE
    try:
        hold_seconds = parse_duration(args.hold) if args.hold else None
    except ValueError as error:
        print(f"cacherr evict: --hold: {error}", file=sys.stderr)
        return EXIT_USAGE
    lock = RunLock(config.state_dir)
    try:
        lock.acquire()
    except AlreadyRunning:
        return _through_service(config, args, hold_seconds)
    try:
        ledger = Ledger.open(config.state_dir)
        try:
            paths = ([e.relative_path for e in ledger.files()] if args.all
                     else resolve(config, ledger, args.paths))
        except UnknownPath as error:
            for line in str(error).splitlines():
                print(f"cacherr evict: {line}", file=sys.stderr)
            ledger.close()
            return EXIT_USAGE
        engine = make_engine(config, ledger)
        engine.recover()
        mover_list = settle_mover_list(config, ledger)
        outcome = evict_paths(engine, ledger, paths, hold_seconds=hold_seconds,
                              mover_list=mover_list)
        ledger.close()
    finally:
        lock.release()
    return _report(outcome.as_dict())


def _through_service(config, args, hold_seconds) -> int:
    from cacherr.server import EvictRequest, request_evict, service_origin

    origin = service_origin(config.state_dir)
    if origin is None:
        print("cacherr evict: a service holds the lock but its address is unknown "
              f"(no runtime file in {config.state_dir})", file=sys.stderr)
        return EXIT_FAILURE
    request = EvictRequest(paths=tuple(args.paths), all=args.all, hold_seconds=hold_seconds)
    try:
        answer = request_evict(origin, request, timeout_seconds=600)
    except (OSError, ValueError) as error:
        print(f"cacherr evict: through the service at {origin}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return _report(answer)


def _report(outcome: dict) -> int:
    for path in outcome.get("queued", []):
        print(f"queued {path} (the running service evicts it)", file=sys.stderr)
    for path in outcome.get("evicted", []):
        print(f"evicted {path}", file=sys.stderr)
    for path in outcome.get("untracked", []):
        print(f"untracked {path}: it changed since cacherr cached it; left alone",
              file=sys.stderr)
    for failure in outcome.get("failed", []):
        print(f"failed {failure['path']}: {failure['reason']}", file=sys.stderr)
    return EXIT_FAILURE if outcome.get("failed") else EXIT_OK
