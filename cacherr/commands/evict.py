"""`cacherr evict PATH... | --all [--hold D]`: put files back now, verified.

When a service holds the lock, the request goes to it (it owns the engine): over its Unix
socket in the state directory when this user may open it, else over HTTP with
`server.token`. The service cancels the queued caches the request concerns, finishes the
transfer in progress, evicts, and answers with what it did. Otherwise this command takes
the lock and evicts itself. `--all` is the uninstall path. A path may be written as Plex
or this host sees it, as its fast-branch copy, or as `cacherr ls` lists it.
"""

from __future__ import annotations

import sys

from cacherr.api import MAX_HOLD_SECONDS, EvictRequest
from cacherr.commands import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from cacherr.commands.config_file import ConfigUnavailable, load_config
from cacherr.commands.plan import open_ledger_read_only
from cacherr.config.units import parse_duration
from cacherr.cycle.evicting import UnknownPath, evict_paths, resolve, why_not_evictable
from cacherr.cycle.once import make_engine, settle_mover_list
from cacherr.runtime import request_evict, request_evict_local, service_origin
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
    if hold_seconds is not None and hold_seconds > MAX_HOLD_SECONDS:
        print("cacherr evict: --hold: at most 30d", file=sys.stderr)
        return EXIT_USAGE
    lock = RunLock(config.state_dir)
    if not lock.is_held_by_other() and not args.all:
        # Bad paths are refused before anything is touched (not even the lock file).
        try:
            snapshot = open_ledger_read_only(config.state_dir)
            try:
                resolve(config, snapshot, args.paths)
            finally:
                snapshot.close()
        except UnknownPath as error:
            return _unknown(error)
    if not lock.is_held_by_other():
        # A pool or state that did not mount: refuse before creating anything.
        problem = why_not_evictable(config)
        if problem is not None:
            print(f"cacherr evict: {problem}; nothing was evicted", file=sys.stderr)
            return EXIT_FAILURE
    try:
        lock.acquire()
    except AlreadyRunning:
        return _through_service(config, args, hold_seconds)
    try:
        ledger = Ledger.open(config.state_dir)
        try:
            try:
                paths = ([e.relative_path for e in ledger.files()] if args.all
                         else resolve(config, ledger, args.paths))
            except UnknownPath as error:
                return _unknown(error)
            engine = make_engine(config, ledger)
            engine.recover()
            mover_list = settle_mover_list(config, ledger)
            outcome = evict_paths(engine, ledger, paths, hold_seconds=hold_seconds,
                                  mover_list=mover_list)
        finally:
            ledger.close()
    finally:
        lock.release()
    return _report(outcome.as_dict(), everything=args.all)


def _unknown(error: UnknownPath) -> int:
    for line in str(error).splitlines():
        print(f"cacherr evict: {line}", file=sys.stderr)
    return EXIT_USAGE


def _through_service(config, args, hold_seconds) -> int:
    request = EvictRequest(paths=tuple(args.paths), all=args.all, hold_seconds=hold_seconds)
    try:
        answer = request_evict_local(config.state_dir, request)
    except ValueError as error:
        return _refused(error)
    except OSError as local_error:
        origin = service_origin(config.state_dir)
        if origin is None:
            print(f"cacherr evict: a service holds the lock but cannot be reached (its socket: "
                  f"{local_error}; no runtime file in {config.state_dir})", file=sys.stderr)
            return EXIT_FAILURE
        if not config.server.token:
            print(f"cacherr evict: the running service's socket in {config.state_dir} cannot "
                  f"be opened ({local_error}); run this as the service's user, or set "
                  "server.token so it can be asked over HTTP", file=sys.stderr)
            return EXIT_FAILURE
        try:
            answer = request_evict(origin, request, timeout_seconds=None,
                                   token=config.server.token)
        except ValueError as error:
            return _refused(error)
        except OSError as error:
            print(f"cacherr evict: through the service at {origin}: {error}", file=sys.stderr)
            return EXIT_FAILURE
    return _report(answer, everything=args.all)


def _refused(error: ValueError) -> int:
    print(f"cacherr evict: {error}", file=sys.stderr)
    return EXIT_USAGE if "HTTP 400" in str(error) else EXIT_FAILURE


def _report(outcome: dict, *, everything: bool) -> int:
    """Print what was done, one line each; return the exit code."""
    lines = [f"cancelled the queued cache of {path}" for path in outcome.get("cancelled", [])]
    lines += [f"evicted {path}" for path in outcome.get("evicted", [])]
    lines += [f"untracked {path}: it changed since cacherr cached it; left alone"
              for path in outcome.get("untracked", [])]
    lines += [f"not cached {path}: nothing to evict" for path in outcome.get("not_cached", [])]
    lines += [f"failed {failure['path']}: {failure['reason']}"
              for failure in outcome.get("failed", [])]
    if not lines:
        lines = ["nothing cached: nothing to evict" if everything else "nothing to evict"]
    for line in lines:
        print(line, file=sys.stderr)
    return EXIT_FAILURE if outcome.get("failed") else EXIT_OK
