"""The command line: argument parsing and dispatch to one module per command.

Only `cacherr.commands` knows argv and exit codes (0 success, 1 runtime failure,
2 usage or config error).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from cacherr import __version__
from cacherr.commands import EXIT_USAGE

COMMANDS = (
    "run", "plan", "validate", "ls", "evict", "doctor", "init", "schema", "healthcheck", "demo",
)


def _common_options(parser: argparse.ArgumentParser, default) -> None:
    """-c, --log-level and --log-json: before the command, or after it (`default` is
    argparse.SUPPRESS there, so an option given before is not reset)."""
    parser.add_argument(
        "-c", "--config", metavar="RULES", default=default(None),
        help="rules file (default: $CACHERR_CONFIG, ./rules.yaml, /config/rules.yaml, "
             "/boot/config/plugins/cacherr/rules.yaml)",
    )
    parser.add_argument("--log-level", default=default("INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-json", action="store_true", default=default(False),
                        help="log as JSON lines")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for every command of SPEC §5."""
    parser = argparse.ArgumentParser(
        prog="cacherr",
        description="Keep the Plex media people are about to watch on a fast cache pool.",
    )
    parser.add_argument("--version", action="version", version=f"cacherr {__version__}")
    _common_options(parser, lambda value: value)
    after = argparse.ArgumentParser(add_help=False)
    _common_options(after, lambda value: argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[after], **kwargs)

    run = command("run", help="the service (or one cycle with --once)")
    run.add_argument("--once", action="store_true", help="run one full cycle, then exit")
    run.add_argument("--dry-run", action="store_true", help="plan and report, move nothing")
    run.add_argument("--wait-for-rules", action="store_true",
                     help="while the rules file is missing or invalid, stay up (answering "
                          "/health) and start once it is valid (the container's default)")

    plan = command("plan", help="what the next cycle would do; changes nothing")
    plan.add_argument("--json", action="store_true", help="pure JSON on stdout")

    validate = command("validate", help="check the rules file")
    validate.add_argument("--offline", action="store_true",
                          help="skip the checks that look at this host (paths, devices)")

    ls = command("ls", help="what is cached, why, for whom, since when")
    ls.add_argument("--user")
    ls.add_argument("--rule")
    ls.add_argument("--format", default="table", choices=["table", "json", "csv"])

    evict = command("evict", help="put files back now")
    evict.add_argument("paths", nargs="*", metavar="PATH")
    evict.add_argument("--all", action="store_true", help="empty the cache (uninstall path)")
    evict.add_argument("--hold", metavar="D", help="keep the files out of plans for duration D")

    doctor = command("doctor", help="check the host and audit the cache")
    doctor.add_argument("--fix", action="store_true", help="repair what is safe to repair")

    init = command("init", help="write a starter rules.yaml")
    init.add_argument("--from-env", metavar="FILE", help="convert a Cacherr/PlexCacheUltra .env")
    init.add_argument("--from-plexcache", metavar="FILE",
                      help="convert a PlexCache plexcache_settings.json")
    init.add_argument("--take-over", metavar="LIST", nargs="?", const="",
                      help="with an existing rules file: adopt PlexCache's cached files "
                           "(optionally listed, one pool path per line, in LIST) and restore "
                           "its .plexcached backups")

    command("schema", help="print the JSON Schema of rules.yaml")
    command("healthcheck", help="exit 0 if the local service is healthy, else 1")

    demo = command("demo", help="run everything on a throw-away sandbox")
    demo.add_argument("--once", action="store_true", help="exit after the demo cycle")
    demo.add_argument("--layout", choices=["auto", "union", "symlink"], default="auto",
                      help="union needs root and mergerfs; auto picks it when it can")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse argv, run the command, return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        # argparse exits 2 on usage errors and 0 on --help/--version.
        return int(exit_.code or 0)
    if args.command == "evict" and not args.all and not args.paths:
        parser.error("evict needs PATH... or --all")  # exits 2
    if args.command == "evict" and args.all and args.paths:
        print("cacherr evict: give PATH... or --all, not both", file=sys.stderr)
        return EXIT_USAGE
    from cacherr.logs import setup_logging

    setup_logging(args.log_level, as_json=args.log_json)
    module = importlib.import_module(f"cacherr.commands.{args.command}")
    try:
        return module.run(args)
    except KeyboardInterrupt:
        logging.getLogger("cacherr").warning("interrupted")
        return 1
