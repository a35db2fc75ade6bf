"""`cacherr init [--from-env FILE] [--from-plexcache FILE]`: write a starter rules.yaml.

The file goes to `-c RULES`, else $CACHERR_CONFIG, else ./rules.yaml, and is never
overwritten (exit 2). It always starts with `dry_run: true`. When Plex answers, its library
folders are proposed as `paths`. What came from another tool's settings and could not be
converted is listed at the top of the file. The text is checked like `cacherr validate
--offline` before it is written; a file that would not pass is not written (exit 1).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cacherr.commands import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from cacherr.config.loader import check_text
from cacherr.host.container import in_container
from cacherr.migrate import common, from_env, from_plexcache
from cacherr.migrate.draft import Draft, PathEntry, Ref, render
from cacherr.migrate.plex_library import PlexUnreachable, apply_libraries, fetch_libraries


class _Refused(Exception):
    """Printed as `cacherr init: <message>`; exit 2."""


def run(args) -> int:
    if getattr(args, "take_over", None) is not None:
        return _take_over(args)
    target = Path(args.config or os.environ.get("CACHERR_CONFIG") or "rules.yaml")
    try:
        if args.from_env and args.from_plexcache:
            raise _Refused("give --from-env or --from-plexcache, not both")
        if target.exists():
            raise _Refused(f"{target} exists; not overwriting it (move it away, or give "
                           "another path with -c)")
        draft = _draft(args)
    except _Refused as error:
        print(f"cacherr init: {error}", file=sys.stderr)
        return EXIT_USAGE
    _complete(draft)
    text = render(draft)
    _, problems = check_text(text, _validation_environ(draft), offline=True)
    if problems:
        for problem in problems:
            print(f"{target}:{problem.line}:{problem.column}: {problem.path}: {problem.message}",
                  file=sys.stderr)
        print("cacherr init: the file it would write is not valid (a bug in init); "
              "nothing was written", file=sys.stderr)
        return EXIT_FAILURE
    try:
        with target.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        print(f"cacherr init: {target} exists; not overwriting it", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"cacherr init: cannot write {target}: {error.strerror or error}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"wrote {target}: {len(draft.paths)} path mapping(s), {len(draft.rules)} rule(s), "
          f"dry_run: true" + (f"; {len(draft.unmapped)} setting(s) not converted, listed at "
                              "the top" if draft.unmapped else ""), file=sys.stderr)
    print(f"next: cacherr -c {target} validate, then cacherr -c {target} plan", file=sys.stderr)
    return EXIT_OK


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise _Refused(f"cannot read {path}: {error.strerror or error}") from None


def _draft(args) -> Draft:
    if args.from_env:
        values = from_env.parse_env(_read(args.from_env))
        if not values:
            raise _Refused(f"{args.from_env} has no KEY=value settings")
        return from_env.convert(values, f"the Cacherr/PlexCacheUltra settings {args.from_env}")
    if args.from_plexcache:
        try:
            data = json.loads(_read(args.from_plexcache))
        except json.JSONDecodeError as error:
            raise _Refused(f"{args.from_plexcache} is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise _Refused(f"{args.from_plexcache} is not a PlexCache settings object")
        return from_plexcache.convert(data, f"the PlexCache settings {args.from_plexcache}")
    draft = Draft()
    if in_container():
        # Never 127.0.0.1:32400: on a bridge network that is the container itself.
        draft.plex_url = Ref("PLEX_URL")
        draft.plex_url_comment = ("the container's PLEX_URL variable: Plex as this container "
                                  "reaches it, e.g. http://192.168.1.10:32400")
    elif os.environ.get("PLEX_URL"):
        try:
            draft.plex_url = common.normalise_plex_url(os.environ["PLEX_URL"])
            draft.plex_url_comment = "from $PLEX_URL"
        except common.NotConvertible:
            pass
    draft.rules = common.starter_rules()
    return draft


def _token(draft: Draft) -> str | None:
    if isinstance(draft.plex_token, Ref):
        name = draft.plex_token.name
        return draft.references.get(name) or os.environ.get(name) or None
    return draft.plex_token


def _plex_url(draft: Draft) -> str | None:
    if isinstance(draft.plex_url, Ref):
        return os.environ.get(draft.plex_url.name) or None
    return draft.plex_url


def _complete(draft: Draft) -> None:
    """Ask Plex for its library folders, then fill in what a valid file still needs."""
    token, url = _token(draft), _plex_url(draft)
    if token and url is None:
        draft.paths_comments.append("PLEX_URL is not set: Plex could not be asked for its "
                                    "library folders (set it and run init again).")
    elif token:
        try:
            apply_libraries(draft, fetch_libraries(url, token))
        except PlexUnreachable as error:
            draft.paths_comments.append(f"Plex at {url} was not reachable ({error}): "
                                        "its library folders could not be proposed.")
    else:
        draft.paths_comments.append("No Plex token to ask Plex for its library folders "
                                    "(set PLEX_TOKEN and run init again to have them proposed).")
    if draft.library_ids:
        draft.skip("valid_sections", ", ".join(draft.library_ids), "library ids: Plex was not "
                   "reachable to name them; write the names in each rule's libraries:")
    if not draft.paths:
        draft.paths.append(PathEntry("/data/media", "/mnt/user/media",
                                     "CHECK: an example; write Plex's folder and this host's"))
        draft.paths_are_example = True
    if not draft.rules:
        draft.rules = common.starter_rules()
    if draft.layout == "union" and not draft.state_dir:
        draft.state_dir = f"{draft.union_fast}/appdata/cacherr"
        draft.state_dir_comment = "on the pool: persistent, local, never the flash drive"


def _validation_environ(draft: Draft) -> dict[str, str]:
    """The environment to check the text with: the source file's values of the variables
    it refers to, else this environment's, else a placeholder (only the form is checked)."""
    environ = dict(os.environ)
    for name in {"PLEX_TOKEN", *draft.references}:
        environ[name] = draft.references.get(name) or environ.get(name) or "placeholder"
    if isinstance(draft.plex_url, Ref) and not environ.get(draft.plex_url.name):
        environ[draft.plex_url.name] = "http://plex.invalid:32400"
    return environ


def _take_over(args) -> int:
    """`init --take-over [LIST]`: make PlexCache's cache cacherr's (see migrate.takeover)."""
    from cacherr.commands.config_file import ConfigUnavailable, load_config
    from cacherr.cycle.once import make_engine, settle_mover_list
    from cacherr.migrate.takeover import take_over
    from cacherr.state.ledger import Ledger
    from cacherr.state.lock import AlreadyRunning, RunLock

    try:
        config = load_config(args)
    except ConfigUnavailable:
        return EXIT_USAGE
    if config.cache.layout != "union":
        print("cacherr init --take-over: PlexCache caches through a merged view; use "
              "layout: union", file=sys.stderr)
        return EXIT_USAGE
    try:
        listed = Path(args.take_over).read_text().splitlines() if args.take_over else []
    except OSError as error:
        print(f"cacherr init --take-over: {args.take_over}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    lock = RunLock(config.state_dir)
    try:
        lock.acquire()
    except AlreadyRunning as error:
        print(f"cacherr init --take-over: {error}; stop it first", file=sys.stderr)
        return EXIT_FAILURE
    try:
        ledger = Ledger.open(config.state_dir)
        try:
            engine = make_engine(config, ledger)
            engine.recover()
            result = take_over(config, engine, listed)
            settle_mover_list(config, ledger)
        finally:
            ledger.close()
    finally:
        lock.release()
    for relative in result.restored:
        print(f"restored the array copy of {relative}", file=sys.stderr)
    for relative in result.adopted:
        print(f"adopted {relative}", file=sys.stderr)
    for problem in result.problems:
        print(f"left alone: {problem}", file=sys.stderr)
    print(f"took over {len(result.adopted)} file(s), restored {len(result.restored)} "
          f"backup(s), {len(result.problems)} problem(s)", file=sys.stderr)
    return EXIT_FAILURE if result.problems else EXIT_OK
