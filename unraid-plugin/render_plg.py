#!/usr/bin/env python3
"""Render cacherr.plg from cacherr.plg.in with the names and SHA256s of the built packages.

  render_plg.py --app dist/cacherr-2026.01.15-x86_64-1.txz \\
                --runtime dist/cacherr-python-3.12.12-x86_64-1.txz [-o cacherr.plg]
  render_plg.py --app-txz NAME --app-sha256 HEX --runtime-txz NAME --runtime-sha256 HEX ...
  render_plg.py --check cacherr.plg     the file is the template rendered with its own values

Only the DOCTYPE entities and <CHANGES> are filled in: everything else in the .plg comes
from the template verbatim. The plugin version is the app package's version. <CHANGES>
starts with "###<version>" followed by unraid-plugin/CHANGES.md (which must not contain
'&' or '<': the plugin manager would fail to parse the .plg).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "cacherr.plg.in"
DEFAULT_REPO = "cacherr/cacherr"
DEFAULT_AUTHOR = "cacherr"
APP_NAME = re.compile(r"^cacherr-(\d{4}\.\d{2}\.\d{2}(?:[a-z]|\.\d+)?)-x86_64-\d+[a-z_]*\.txz$")
RUNTIME_NAME = re.compile(r"^cacherr-python-3\.12\.[0-9]+-x86_64-\d+[a-z_]*\.txz$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# An entity value cannot hold '"', '&', '%' or '<'; a URL here never needs them.
URL = re.compile(r"^https?://[^\s\"&%<>']+$")
PLACEHOLDER_SHA256 = re.compile(r"^(.)\1{63}$")


class RenderError(Exception):
    pass


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_plugin_url(repo: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/main/cacherr.plg"


def default_release_url(repo: str, version: str) -> str:
    return f"https://github.com/{repo}/releases/download/{version}"


def render(*, app_txz: str, app_sha256: str, runtime_txz: str, runtime_sha256: str,
           changes: str, repo: str = DEFAULT_REPO, author: str = DEFAULT_AUTHOR,
           plugin_url: str | None = None, release_url: str | None = None,
           template: str | None = None) -> str:
    """Return the .plg text; raise RenderError on a value the .plg cannot carry."""
    match = APP_NAME.match(app_txz)
    if not match:
        raise RenderError(f"app package name {app_txz!r} is not cacherr-YYYY.MM.DD-x86_64-N.txz")
    if not RUNTIME_NAME.match(runtime_txz):
        raise RenderError(f"runtime package name {runtime_txz!r} is not "
                          "cacherr-python-3.12.P-x86_64-N.txz")
    for label, digest in (("app", app_sha256), ("runtime", runtime_sha256)):
        if not SHA256.match(digest):
            raise RenderError(f"{label} SHA256 {digest!r} is not 64 lowercase hex digits")
    if not REPO_NAME.match(repo):
        raise RenderError(f"repository {repo!r} is not OWNER/NAME")
    for label, text in (("CHANGES", changes), ("author", author)):
        if "&" in text or "<" in text or "]]>" in text:
            raise RenderError(f"{label} must not contain '&' or '<' (the .plg would not parse)")
    version = match.group(1)
    plugin_url = plugin_url or default_plugin_url(repo)
    release_url = (release_url or default_release_url(repo, version)).rstrip("/")
    for label, url in (("plugin URL", plugin_url), ("release URL", release_url)):
        if not URL.match(url):
            raise RenderError(f"{label} {url!r} is not an http(s) URL the .plg can carry")
    if not plugin_url.endswith("/cacherr.plg"):
        raise RenderError(f"plugin URL {plugin_url!r} must end in /cacherr.plg (the plugin's "
                          "name is its file's name)")
    notes = changes.strip("\n")
    if not notes.startswith(f"###{version}"):
        notes = f"###{version}\n{notes}"
    values = {
        "@AUTHOR@": author, "@VERSION@": version, "@REPO@": repo,
        "@APP_TXZ@": app_txz, "@APP_SHA256@": app_sha256,
        "@RUNTIME_TXZ@": runtime_txz, "@RUNTIME_SHA256@": runtime_sha256,
        "@PLUGIN_URL@": plugin_url, "@RELEASE_URL@": release_url, "@CHANGES@": notes,
    }
    text = template if template is not None else TEMPLATE.read_text()
    for placeholder, value in values.items():
        if placeholder not in text:
            raise RenderError(f"the template has no {placeholder}")
        text = text.replace(placeholder, value)
    return text


def _entity(text: str, name: str) -> str:
    match = re.search(rf'<!ENTITY\s+{name}\s+"([^"]*)"\s*>', text)
    if not match:
        raise RenderError(f"no entity {name!r}")
    return match.group(1)


def values_of(plg_text: str) -> dict[str, str]:
    """The values a rendered .plg was made from (for --check)."""
    changes = re.search(r"<CHANGES>\n(.*?)\n</CHANGES>", plg_text, re.DOTALL)
    if not changes:
        raise RenderError("no <CHANGES> block")
    return {
        "app_txz": _entity(plg_text, "appTXZ"), "app_sha256": _entity(plg_text, "appSHA256"),
        "runtime_txz": _entity(plg_text, "runtimeTXZ"),
        "runtime_sha256": _entity(plg_text, "runtimeSHA256"),
        "repo": _entity(plg_text, "gitRepo"), "author": _entity(plg_text, "author"),
        "plugin_url": _entity(plg_text, "pluginURL"),
        "release_url": _entity(plg_text, "releaseURL"), "changes": changes.group(1),
    }


def placeholder_checksums(plg_text: str) -> list[str]:
    """The names of the SHA256 entities that hold a placeholder (one digit repeated, e.g. zeros)."""
    return [name for name in ("appSHA256", "runtimeSHA256")
            if PLACEHOLDER_SHA256.match(_entity(plg_text, name))]


def check(path: Path) -> list[str]:
    """Return the diff between `path` and the template rendered with its values (empty: same)."""
    text = path.read_text()
    expected = render(**values_of(text))
    return list(difflib.unified_diff(expected.splitlines(), text.splitlines(),
                                     "rendered from template", str(path), lineterm=""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render cacherr.plg from its template.")
    parser.add_argument("--app", type=Path, help="the built app package")
    parser.add_argument("--runtime", type=Path, help="the built runtime package")
    parser.add_argument("--app-txz")
    parser.add_argument("--app-sha256")
    parser.add_argument("--runtime-txz")
    parser.add_argument("--runtime-sha256")
    parser.add_argument("--repo", default=DEFAULT_REPO, help="GitHub OWNER/NAME of releases")
    parser.add_argument("--author", default=DEFAULT_AUTHOR)
    parser.add_argument("--plugin-url", help="pluginURL (default: the repository's main branch)")
    parser.add_argument("--release-url",
                        help="the folder URL of the packages (default: the GitHub release)")
    parser.add_argument("--changes", type=Path, default=HERE / "CHANGES.md")
    parser.add_argument("-o", "--output", type=Path, default=HERE.parent / "cacherr.plg")
    parser.add_argument("--check", type=Path, metavar="PLG",
                        help="exit 1 if PLG is not the template rendered with its own values")
    parser.add_argument("--zero-check", type=Path, metavar="PLG",
                        help="exit 1 if a SHA256 in PLG is a placeholder (e.g. all zeros)")
    args = parser.parse_args(argv)
    try:
        if args.zero_check:
            placeholders = placeholder_checksums(args.zero_check.read_text())
            if placeholders:
                print(f"{args.zero_check}: {', '.join(placeholders)} hold a placeholder, "
                      "not a package's SHA256: `plugin install` would fail with 'bad file "
                      "SHA256'; render it from a build (make plugin)", file=sys.stderr)
                return 1
            return 0
        if args.check:
            diff = check(args.check)
            if diff:
                print("\n".join(diff))
                print(f"{args.check}: differs from the template; re-render it", file=sys.stderr)
                return 1
            return 0
        app_txz = args.app.name if args.app else args.app_txz
        runtime_txz = args.runtime.name if args.runtime else args.runtime_txz
        app_sha256 = sha256_of(args.app) if args.app else args.app_sha256
        runtime_sha256 = sha256_of(args.runtime) if args.runtime else args.runtime_sha256
        if not all((app_txz, runtime_txz, app_sha256, runtime_sha256)):
            parser.error("give --app and --runtime (or the --*-txz and --*-sha256 values)")
        text = render(app_txz=app_txz, app_sha256=app_sha256, runtime_txz=runtime_txz,
                      runtime_sha256=runtime_sha256, changes=args.changes.read_text(),
                      repo=args.repo, author=args.author, plugin_url=args.plugin_url,
                      release_url=args.release_url)
    except RenderError as error:
        print(f"render_plg.py: {error}", file=sys.stderr)
        return 2
    args.output.write_text(text)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
