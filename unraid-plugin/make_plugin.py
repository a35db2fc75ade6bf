#!/usr/bin/env python3
"""`make plugin`: build the Unraid plugin's two packages and render cacherr.plg, into dist/.

  make plugin [PLUGIN_VERSION=YYYY.MM.DD] [REPO=OWNER/NAME] [RELEASE=1]
              [PBS_TARBALL=FILE PBS_SHA256=HEX PBS_PYTHON_VERSION=3.12.N]
  python unraid-plugin/make_plugin.py --pin [--pbs-installer VERSION]

1. The runtime package, from a python-build-standalone install_only build: the one pinned
   in runtime-pin.env (downloaded, its SHA256 checked), or a tarball you give (--tarball,
   with its --sha256 and --python-version unless it is the pinned file).
2. The app package, its bytecode compiled by that runtime (build.py --runtime-python).
3. cacherr.plg, rendered with both packages' names and SHA256s (render_plg.py).

Output: OUT/cacherr-python-<py>-x86_64-1.txz, OUT/cacherr-<version>-x86_64-1.txz (each with
a .sha256) and OUT/cacherr.plg. --release (the release workflow) also requires that the
top of CHANGES.md is this version's `###YYYY.MM.DD` heading and that the version sorts
after every earlier heading (the plugin manager compares versions with strcmp).

--pin downloads pbs-installer from PyPI with pip: its versions.json lists every
python-build-standalone build with its URL and SHA256. The newest CPython 3.12
x86_64-unknown-linux-gnu install_only build there is written to runtime-pin.env.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PIN_FILE = HERE / "runtime-pin.env"
PBS_FILE_NAME = re.compile(
    r"^cpython-(3\.12\.\d+)\+(\d{8})-x86_64-unknown-linux-gnu-install_only(_stripped)?\.tar\.gz$")
HEADING = re.compile(r"^###(\S+)\s*$")


class PluginBuildError(Exception):
    pass


def _load(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"cacherr_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the pin ------------------------------------------------------------------------------


def read_pin(path: Path = PIN_FILE) -> dict[str, str]:
    """Given runtime-pin.env, return its KEY=VALUE pairs; raise PluginBuildError if incomplete."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    missing = {"PBS_INSTALLER", "PYTHON_VERSION", "PBS_URL", "PBS_SHA256"} - set(values)
    if missing:
        raise PluginBuildError(f"{path}: missing {', '.join(sorted(missing))}")
    return values


def runtime_builds(versions: list[dict]) -> dict[str, dict]:
    """Given pbs-installer's versions.json, return {"3.12.N": file entry} of the CPython 3.12
    x86_64 linux-gnu install_only builds (the only kind the plugin's runtime can be)."""
    found = {}
    for entry in versions:
        version = entry["python_version"]
        if (version["implementation"], version["major"], version["minor"],
                version["freethreaded"]) != ("cpython", 3, 12, False):
            continue
        for file in entry["files"]:
            match = PBS_FILE_NAME.match(file["filename"])
            if (match and (file["platform"], file["arch"], file["install_only"])
                    == ("linux", "x86_64", True) and file.get("sha256")):
                found[match.group(1)] = file
    return found


def pin(pbs_installer: str | None) -> Path:
    """Rewrite runtime-pin.env from pbs-installer's versions.json (downloaded with pip)."""
    requirement = f"pbs-installer=={pbs_installer}" if pbs_installer else "pbs-installer"
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                               "--only-binary=:all:", "--dest", scratch, requirement],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise PluginBuildError(f"pip download {requirement} failed:\n{done.stderr}")
        wheel = next(Path(scratch).glob("pbs_installer-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            versions = json.loads(archive.read("pbs_installer/versions.json"))
        installer_version = wheel.name.split("-")[1]
    builds = runtime_builds(versions)
    if not builds:
        raise PluginBuildError(f"pbs-installer {installer_version} lists no 3.12 build")
    newest = max(builds, key=lambda version: tuple(int(n) for n in version.split(".")))
    build = builds[newest]
    PIN_FILE.write_text(
        "# The plugin's Python runtime: a python-build-standalone build, as listed (URL and\n"
        "# SHA256) in the versions.json of the pbs-installer package on PyPI. Written by\n"
        "# `python unraid-plugin/make_plugin.py --pin`; keep requirements-dev.txt's\n"
        "# pbs-installer at the same version (a test checks these values against it).\n"
        f"PBS_INSTALLER={installer_version}\n"
        f"PYTHON_VERSION={newest}\n"
        f"PBS_URL={build['url']}\n"
        f"PBS_SHA256={build['sha256']}\n")
    return PIN_FILE


# -- the build ----------------------------------------------------------------------------


def check_release_notes(changes: str, version: str) -> None:
    """Raise PluginBuildError unless CHANGES.md starts with ###<version>, newest of all."""
    lines = [line for line in changes.splitlines() if line.strip()]
    top = HEADING.match(lines[0]) if lines else None
    if not top or top.group(1) != version:
        raise PluginBuildError(f"unraid-plugin/CHANGES.md must begin with ###{version} (the "
                               "notes of this release): add the heading above them")
    older = [m.group(1) for m in map(HEADING.match, lines[1:]) if m]
    not_newer = [heading for heading in older if heading >= version]
    if not_newer:
        raise PluginBuildError(f"{version} does not sort after {', '.join(not_newer)}: the "
                               "plugin manager (strcmp) would not offer it as an update")


def _run(command: list[str], what: str, env: dict | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise PluginBuildError(f"{what} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def build_runtime(out: Path, pinned: dict[str, str], tarball: str | None, sha256: str | None,
                  python_version: str | None, mtime: int) -> Path:
    command = [str(HERE / "build-runtime.sh"), "--out", str(out),
               "--version", python_version or pinned["PYTHON_VERSION"],
               "--sha256", sha256 or pinned["PBS_SHA256"]]
    command += ["--tarball", tarball] if tarball else ["--url", pinned["PBS_URL"]]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(mtime)}
    return Path(_run(command, "build-runtime.sh", env).strip().splitlines()[-1])


def make_plugin(args: argparse.Namespace) -> Path:
    """Build both packages and render cacherr.plg into args.out; return the .plg's path."""
    build, render = _load("build"), _load("render_plg")
    version = args.version or build.default_version()
    changes = (HERE / "CHANGES.md").read_text()
    if args.release:
        check_release_notes(changes, version)
    if args.tarball and not (args.sha256 and args.python_version):
        raise PluginBuildError("a given tarball needs --sha256 and --python-version "
                               "(PBS_SHA256, PBS_PYTHON_VERSION)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("cacherr*.txz*"):
        old.unlink()
    mtime = build.default_mtime()
    runtime = build_runtime(out, read_pin(), args.tarball, args.sha256, args.python_version, mtime)

    with tempfile.TemporaryDirectory(prefix="cacherr-plugin-") as scratch:
        runtime_python = None
        if not args.no_bytecode:
            with tarfile.open(runtime) as tar:
                tar.extractall(scratch, filter="tar")
            runtime_python = str(Path(scratch) / "usr/local/lib/cacherr/python/bin/python3")
        wheelhouse = Path(args.wheelhouse) if args.wheelhouse else Path(scratch) / "wheels"
        app = build.build(version, "1", out, wheelhouse, runtime_python, mtime,
                          xz_preset=args.xz_preset)

    try:
        text = render.render(
            app_txz=app.name, app_sha256=render.sha256_of(app), runtime_txz=runtime.name,
            runtime_sha256=render.sha256_of(runtime), changes=changes, repo=args.repo,
            plugin_url=args.plugin_url, release_url=args.release_url)
    except render.RenderError as error:
        raise PluginBuildError(str(error)) from error
    plg = out / "cacherr.plg"
    plg.write_text(text)
    if shutil.which("xmllint"):
        _run(["xmllint", "--noout", str(plg)], "xmllint")
    return plg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Unraid plugin into dist/.")
    parser.add_argument("--version", help="plugin version (default: HEAD's date)")
    parser.add_argument("--repo", default="cacherr/cacherr", help="GitHub OWNER/NAME")
    parser.add_argument("--out", default=str(REPO / "dist"), help="output folder (dist/)")
    parser.add_argument("--tarball", help="a python-build-standalone tarball you have")
    parser.add_argument("--sha256", help="the tarball's SHA256 (default: the pinned one)")
    parser.add_argument("--python-version", help="the tarball's Python (3.12.N)")
    parser.add_argument("--release", action="store_true",
                        help="require CHANGES.md to begin with this version's notes")
    parser.add_argument("--plugin-url", help="pluginURL (default: the main branch's file)")
    parser.add_argument("--release-url", help="packages' folder URL (default: the release)")
    parser.add_argument("--wheelhouse", default=os.environ.get("CACHERR_WHEELHOUSE"),
                        help="reuse this wheel download folder ($CACHERR_WHEELHOUSE)")
    parser.add_argument("--xz-preset", type=int, default=6, choices=range(10),
                        help="xz preset of the app package (tests use 0 for speed)")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="do not compile bytecode with the runtime (a stand-in runtime "
                             "in tests; never for a release)")
    parser.add_argument("--pin", action="store_true",
                        help="rewrite runtime-pin.env from pbs-installer (PyPI) and exit")
    parser.add_argument("--pbs-installer", help="with --pin: this pbs-installer version")
    args = parser.parse_args(argv)
    try:
        if args.pin:
            print(pin(args.pbs_installer))
            return 0
        if args.release and args.no_bytecode:
            parser.error("--release compiles bytecode with the runtime: no --no-bytecode")
        plg = make_plugin(args)
    except PluginBuildError as error:
        print(f"make plugin: {error}", file=sys.stderr)
        return 1
    for path in sorted(plg.parent.glob("cacherr*")):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
