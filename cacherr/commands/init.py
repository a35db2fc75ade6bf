"""`cacherr init [--from-env FILE] [--from-plexcache FILE]`: write a starter rules.yaml.

The file goes to `-c RULES`, else $CACHERR_CONFIG, else ./rules.yaml, and is never
overwritten (exit 2). It always starts with `dry_run: true`. When Plex answers, its library
folders are proposed as `paths`. What came from another tool's settings and could not be
converted is listed at the top of the file, secrets hidden. Secrets are written as
`${NAME}`, their values into the `.env` beside the rules file (mode 0600). The text is
checked like `cacherr validate --offline` before anything is written; a file that would
not pass is not written (exit 1). The command says where it wrote, what it guessed, and
whether the service will find the file there.

Each step is a function of the Draft (`_draft`, `_complete`, `_advice`), so a caller
that knows more (the container's entry point) can fill the Draft first.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cacherr.commands import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from cacherr.config import dotenv
from cacherr.config.loader import check_text
from cacherr.host.container import in_container
from cacherr.migrate import common, from_env, from_plexcache
from cacherr.migrate.draft import Draft, PathEntry, Ref, render
from cacherr.migrate.plex_library import PlexUnreachable, apply_libraries, fetch_libraries

TOKEN_HELP_URL = ("https://support.plex.tv/articles/"
                  "204059436-finding-an-authentication-token-x-plex-token/")
# Where an installed service reads its rules: (what shows the install, the rules file, what).
SERVICE_LOCATIONS = (
    (Path("/boot/config/plugins/cacherr"), Path("/boot/config/plugins/cacherr/rules.yaml"),
     "the Unraid plugin"),
    (Path("/.dockerenv"), Path("/config/rules.yaml"), "the container"),
)


class _Refused(Exception):
    """Printed as `cacherr init: <message>`; exit 2."""


def run(args) -> int:
    if getattr(args, "take_over", None) is not None:
        return _take_over(args)
    target = Path(args.config or os.environ.get("CACHERR_CONFIG") or "rules.yaml").absolute()
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
    secrets_file = dotenv.beside(target)
    try:
        added, kept = dotenv.merge(secrets_file, draft.secrets()) if draft.secrets() else ([], [])
    except (OSError, ValueError) as error:
        print(f"cacherr init: cannot write the secrets to {secrets_file}: "
              f"{getattr(error, 'strerror', None) or error}; nothing was written", file=sys.stderr)
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
    for line in _advice(draft, target, secrets_file, added, kept):
        print(line, file=sys.stderr)
    return EXIT_OK


def _advice(draft: Draft, target: Path, secrets_file: Path, added: list[str],
            kept: list[str]) -> list[str]:
    """What the user must know about the file just written: where it is, where its
    secrets went, what was guessed, and whether the service will read it."""
    lines = [f"wrote {target}: {len(draft.paths)} path mapping(s), {len(draft.rules)} rule(s), "
             "dry_run: true" + (f"; {len(draft.unmapped)} setting(s) not converted, listed at "
                                "the top" if draft.unmapped else "")]
    if added:
        lines.append(f"wrote {', '.join(added)} to {secrets_file} (readable by you only); the "
                     "rules file refers to them as ${NAME}")
    for name in kept:
        lines.append(f"{secrets_file} already sets {name} to another value; kept it (the rules "
                     "file uses that one): check it")
    if draft.plex_url_guessed:
        lines.append(f"CHECK plex.url: no Plex address was given, so the file says "
                     f"{draft.plex_url} (Plex on this host); write your server's address "
                     "(or set PLEX_URL and run init again)")
    if _token_unknown(draft):
        lines.append("no Plex token yet: in Plex Web open any item's ... menu > Get Info > View "
                     "XML; the address ends with X-Plex-Token=YOUR_TOKEN (" + TOKEN_HELP_URL
                     + f"). Put PLEX_TOKEN=YOUR_TOKEN in {secrets_file} (chmod 600) or in "
                     "the service's environment")
    lines += _location_warnings(target)
    lines.append(f"next: cacherr -c {target} validate, then cacherr -c {target} plan")
    return lines


def _token_unknown(draft: Draft) -> bool:
    return isinstance(draft.plex_token, Ref) and not _token(draft)


def _location_warnings(target: Path) -> list[str]:
    """A warning for each installed service that reads its rules somewhere else."""
    warnings = []
    for marker, rules_file, what in SERVICE_LOCATIONS:
        if marker.exists() and target.resolve() != rules_file.resolve():
            warnings.append(f"WARNING: {what} reads {rules_file}, not {target}: move the file "
                            f"(and its .env) there, or the service will not use it")
    return warnings


MAX_SETTINGS_BYTES = 4 * 1024 * 1024  # a settings file is a few KiB
MAX_LIST_BYTES = 16 * 1024 * 1024  # PlexCache's list of cached paths: ~150 bytes a file


def _read(path: str, max_bytes: int = MAX_SETTINGS_BYTES, what: str = "a settings file") -> str:
    """The UTF-8 text of a file a user named, read no further than `max_bytes`; raise
    _Refused (nothing read beyond the bound) for a larger, unreadable or binary file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise _Refused(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > max_bytes:
        raise _Refused(f"{path} is larger than {what} can be ({max_bytes // 2**20} MiB); "
                       "is it the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Refused(f"{path} is not UTF-8 text (byte {error.start})") from None


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
        except RecursionError:
            raise _Refused(f"{args.from_plexcache} nests too deeply to be PlexCache "
                           "settings") from None
        if not isinstance(data, dict):
            raise _Refused(f"{args.from_plexcache} is not a PlexCache settings object")
        return from_plexcache.convert(data, f"the PlexCache settings {args.from_plexcache}")
    draft = Draft(source="no earlier tool's settings (a starter file)")
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
    from cacherr.host.container import how_to_stop_first
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
        listed = _read(args.take_over, MAX_LIST_BYTES, "a list of cached files").splitlines() \
            if args.take_over else []
    except _Refused as refused:
        print(f"cacherr init --take-over: {refused}", file=sys.stderr)
        return EXIT_USAGE
    lock = RunLock(config.state_dir)
    try:
        lock.acquire()
    except AlreadyRunning as error:
        command = "init --take-over" + (f" {args.take_over}" if args.take_over else "")
        print(f"cacherr init --take-over: {error}; {how_to_stop_first(command)}",
              file=sys.stderr)
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
