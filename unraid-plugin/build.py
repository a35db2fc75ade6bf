#!/usr/bin/env python3
"""Build the Unraid app package: dist/cacherr-<version>-x86_64-<build>.txz.

The package holds cacherr and every dependency installed for the plugin's own runtime
(CPython 3.12, manylinux x86_64; see build-runtime.sh), so nothing is ever pip-installed
on the server:

  usr/local/lib/cacherr/site-packages/      cacherr + the pinned dependency closure
  usr/local/lib/cacherr/python/lib/python3.12/site-packages/cacherr.pth
                                            puts the above on the runtime's path (relative,
                                            so an extracted tree works anywhere)
  usr/local/sbin/cacherr                    the wrapper: runtime python3 -I -m cacherr
  etc/rc.d/rc.cacherr                       start|stop|restart|status
  usr/local/emhttp/plugins/cacherr/         page, README, icon, event scripts, default rules
  install/doinst.sh, install/slack-desc

Usage:
  build.py [--version YYYY.MM.DD] [--build 1] [--out dist] [--wheelhouse DIR]
           [--runtime-python PATH] [--mtime EPOCH]
  build.py --lock        rewrite constraints.txt from requirements.txt (needs PyPI)

Dependencies come from PyPI as binary wheels only (`pip download --only-binary=:all:
--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --python-version 3.12
--implementation cp`) into a wheelhouse (`--wheelhouse` or $CACHERR_WHEELHOUSE to reuse
one; it is filled once and then used offline), and are installed from there with --no-index.

Bytecode is compiled only with the runtime's own interpreter (`--runtime-python`, the
release workflow passes it): .pyc files are specific to the Python minor version, so
without a 3.12 interpreter the step is skipped and Python compiles on first import.

The version defaults to the date of the HEAD commit and the mtime of every entry to its
timestamp (or $SOURCE_DATE_EPOCH), so the same tree and the same wheels give the same
bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON_MINOR = "3.12"
PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
    "--python-version", PYTHON_MINOR, "--implementation", "cp",
]
PREFIX = "usr/local/lib/cacherr"
SITE = f"{PREFIX}/site-packages"
RUNTIME_SITE = f"{PREFIX}/python/lib/python{PYTHON_MINOR}/site-packages"
EMHTTP = "usr/local/emhttp/plugins/cacherr"
VERSION_PATTERN = re.compile(r"^\d{4}\.\d{2}\.\d{2}([a-z]|\.\d+)?$")


def _load_pkgtar():
    spec = importlib.util.spec_from_file_location("cacherr_pkgtar", HERE / "pkgtar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def default_version() -> str:
    """The date of the HEAD commit as YYYY.MM.DD (the plugin's version scheme)."""
    return _git("log", "-1", "--format=%cd", "--date=format:%Y.%m.%d") or "1970.01.01"


def default_mtime() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    return int(_git("log", "-1", "--format=%ct") or 0)


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"build.py: pip failed: {' '.join(args[:2])} ...")


def _inputs_digest() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "unraid-plugin/constraints.txt"):
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()[:16]


def fill_wheelhouse(wheelhouse: Path) -> None:
    """Download the pinned closure into `wheelhouse` once (a marker records what it holds)."""
    marker = wheelhouse / f".complete-{_inputs_digest()}"
    if marker.exists():
        return
    wheelhouse.mkdir(parents=True, exist_ok=True)
    _pip("download", "--dest", str(wheelhouse), *PLATFORM_ARGS,
         "-r", str(REPO / "requirements.txt"), "-c", str(HERE / "constraints.txt"))
    marker.touch()


def lock() -> None:
    """Rewrite constraints.txt with the closure PyPI resolves for requirements.txt today."""
    with tempfile.TemporaryDirectory() as scratch:
        _pip("download", "--dest", scratch, *PLATFORM_ARGS, "-r", str(REPO / "requirements.txt"))
        pins = sorted(
            re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower() + "==" + wheel.name.split("-")[1]
            for wheel in Path(scratch).glob("*.whl")
        )
    header = [line for line in (HERE / "constraints.txt").read_text().splitlines()
              if line.startswith("#")]
    (HERE / "constraints.txt").write_text("\n".join(header + pins) + "\n")


def _copy_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if "__pycache__" in relative.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)


def _install(source: Path, stage: Path, relative: str, executable: bool = False) -> None:
    target = stage / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(0o755 if executable else 0o644)


def stage_package(stage: Path, wheelhouse: Path, runtime_python: str | None,
                  source: Path = REPO / "cacherr") -> None:
    """Fill `stage` with the package's tree (cacherr's code copied from `source`)."""
    site = stage / SITE
    _pip("install", "--no-index", "--find-links", str(wheelhouse), "--target", str(site),
         *PLATFORM_ARGS, "--no-compile", "--no-warn-script-location",
         "-r", str(REPO / "requirements.txt"), "-c", str(HERE / "constraints.txt"))
    # Console scripts carry the build machine's interpreter in their #! line: useless on
    # the server, and they would make the package differ between machines.
    shutil.rmtree(site / "bin", ignore_errors=True)
    _copy_tree(source, site / "cacherr")
    pth = stage / RUNTIME_SITE / "cacherr.pth"
    pth.parent.mkdir(parents=True, exist_ok=True)
    pth.write_text("../../../../site-packages\n")

    _install(HERE / "wrapper.sh", stage, "usr/local/sbin/cacherr", executable=True)
    _install(HERE / "rc.cacherr", stage, "etc/rc.d/rc.cacherr", executable=True)
    for event in ("started", "stopping", "unmounting_disks"):
        _install(HERE / "event" / event, stage, f"{EMHTTP}/event/{event}", executable=True)
    _install(HERE / "scripts" / "service", stage, f"{EMHTTP}/scripts/service", executable=True)
    _install(HERE / "cacherr.page", stage, f"{EMHTTP}/cacherr.page")
    _install(HERE / "README.md", stage, f"{EMHTTP}/README.md")
    _install(HERE / "cacherr.png", stage, f"{EMHTTP}/images/cacherr.png")
    _install(HERE / "default-rules.yaml", stage, f"{EMHTTP}/default-rules.yaml")
    _install(HERE / "install" / "doinst.sh", stage, "install/doinst.sh")
    _install(HERE / "install" / "slack-desc", stage, "install/slack-desc")

    if runtime_python:
        # -d: the paths tracebacks show are the installed ones; unchecked-hash: no mtimes
        # in the .pyc files (reproducible), and the tree is read-only once installed.
        done = subprocess.run(
            [runtime_python, "-m", "compileall", "-q", "-j", "0",
             "--invalidation-mode", "unchecked-hash", "-d", f"/{SITE}", str(site)],
            capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit("build.py: compiling bytecode with the runtime failed")


def build(version: str, build_number: str, out: Path, wheelhouse: Path,
          runtime_python: str | None, mtime: int, *, source: Path = REPO / "cacherr",
          xz_preset: int = 6) -> Path:
    """Build the package into `out`; return its path (a .sha256 file is written beside it)."""
    if not VERSION_PATTERN.match(version):
        raise SystemExit(f"build.py: version {version!r} is not YYYY.MM.DD[a|.N]")
    if runtime_python:
        done = subprocess.run([runtime_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True)
        if done.stdout.strip() != PYTHON_MINOR:
            raise SystemExit(f"build.py: {runtime_python} is Python {done.stdout.strip()}, "
                             f"not {PYTHON_MINOR}")
    fill_wheelhouse(wheelhouse)
    pkgtar = _load_pkgtar()
    package = out / f"cacherr-{version}-x86_64-{build_number}.txz"
    with tempfile.TemporaryDirectory(prefix="cacherr-stage-") as scratch:
        stage = Path(scratch) / "root"
        stage.mkdir()
        stage_package(stage, wheelhouse, runtime_python, source)
        digest = pkgtar.pack(stage, package, mtime, xz_preset)
    pkgtar.write_sha256(package, digest)
    return package


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the cacherr Unraid app package.")
    parser.add_argument("--version", default=None, help="plugin version (default: HEAD's date)")
    parser.add_argument("--build", default="1", help="Slackware build number (default 1)")
    parser.add_argument("--out", default=str(REPO / "dist"), help="output folder")
    parser.add_argument("--wheelhouse", default=os.environ.get("CACHERR_WHEELHOUSE"),
                        help="reuse this download folder (default: a temporary one)")
    parser.add_argument("--runtime-python", default=None,
                        help="the runtime's python3, to compile bytecode (else skipped)")
    parser.add_argument("--mtime", type=int, default=None,
                        help="entry mtime (default: $SOURCE_DATE_EPOCH, else HEAD's time)")
    parser.add_argument("--source", default=str(REPO / "cacherr"),
                        help="the cacherr package folder to ship (default: this checkout's)")
    parser.add_argument("--xz-preset", type=int, default=6, choices=range(10),
                        help="xz compression preset (default 6; tests use 0 for speed)")
    parser.add_argument("--lock", action="store_true", help="rewrite constraints.txt and exit")
    args = parser.parse_args(argv)
    if args.lock:
        lock()
        return 0
    if not re.fullmatch(r"\d+[a-z_]*", args.build):
        parser.error("--build must be digits, optionally followed by a tag (1, 2, 1_test)")
    mtime = default_mtime() if args.mtime is None else args.mtime
    with tempfile.TemporaryDirectory(prefix="cacherr-wheels-") as scratch:
        wheelhouse = Path(args.wheelhouse) if args.wheelhouse else Path(scratch)
        package = build(args.version or default_version(), args.build, Path(args.out),
                        wheelhouse, args.runtime_python, mtime, source=Path(args.source),
                        xz_preset=args.xz_preset)
    if not args.runtime_python:
        print("build.py: no --runtime-python: bytecode not compiled", file=sys.stderr)
    print(package)
    return 0


if __name__ == "__main__":
    sys.exit(main())
