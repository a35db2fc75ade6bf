"""Building the Unraid plugin for tests: the real app package, a stand-in Python runtime laid
out like python-build-standalone, the real runtime recipe, `make plugin` and the renderer.

Offline CI has no python-build-standalone build, so the runtime package is made by the real
recipe (build-runtime.sh) from a small stand-in tarball: `python/bin/python3` runs this
machine's interpreter (the test venv's, which has cacherr's dependencies for its own Python
version) the way the real runtime would run: `-I`, and the runtime's site-packages (with
the app package's cacherr.pth) on the path, so the cacherr code that runs is the one the
app package installed. It can also log every call, with the cacherr services running at
that moment, to a file (the plugin-manager tests read it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = REPO / "unraid-plugin"
WHEELHOUSE = Path(tempfile.gettempdir()) / "cacherr-test-wheelhouse"
TEST_MTIME = 1_767_225_600  # 2026-01-01
TEST_VERSION = "2026.03.04"
STANDIN_PYTHON_VERSION = "3.12.0"

STANDIN_LAUNCHER = """#!/bin/sh
# Stand-in for python-build-standalone's interpreter (tests only).
exec {python} -I "$(dirname "$0")/standin.py" "$@"
"""

STANDIN_SCRIPT = '''"""Run like python-build-standalone's python3 would: isolated, with the runtime's
site-packages (and the .pth files in it) on the path; optionally log the call."""
import json, os, runpy, site, sys, time

PREFIX = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALL_LOG = {call_log!r}


def services():
    """PIDs of the `... -m cacherr ... run` processes (what rc.cacherr calls the service) that
    share this process's root (the machine may run other cacherr services outside it)."""
    found, here = [], os.stat("/")
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            there = os.stat(f"/proc/{{entry}}/root")
            if (there.st_dev, there.st_ino) != (here.st_dev, here.st_ino):
                continue
            with open(f"/proc/{{entry}}/cmdline", "rb") as handle:
                argv = [arg.decode(errors="replace") for arg in handle.read().split(b"\\0")[:-1]]
        except OSError:
            continue
        module = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-m"]
        if "cacherr" in module and argv[-1] == "run":
            found.append(int(entry))
    return found


def main():
    args = sys.argv[1:]
    if CALL_LOG and os.path.isdir(os.path.dirname(CALL_LOG)):  # e.g. not while building
        record = {{"pid": os.getpid(), "argv": args, "t": time.time_ns(), "services": services()}}
        with open(CALL_LOG, "a") as handle:
            handle.write(json.dumps(record) + "\\n")
    sys.dont_write_bytecode = True  # the real runtime's bytecode comes compiled in its packages
    site.addsitedir(os.path.join(PREFIX, "lib", "python3.12", "site-packages"))
    while args and args[0].startswith("-") and args[0] not in ("-m", "-c"):
        args.pop(0)
    if args[:1] == ["-m"]:
        sys.argv = args[1:]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    elif args[:1] == ["-c"]:
        sys.argv = ["-c", *args[2:]]
        exec(compile(args[1], "<string>", "exec"), {{"__name__": "__main__"}})
    elif args:
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")
    else:
        sys.exit("stand-in python: no interactive mode")


main()
'''

_BUILT: dict[tuple[str, str], Path] = {}


def load_plugin_module(name: str):
    """Import a module of unraid-plugin/ (a folder with a dash: not a package)."""
    spec = importlib.util.spec_from_file_location(f"cacherr_{name}", PLUGIN_SOURCES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inputs_digest(source: Path) -> str:
    digest = hashlib.sha256()
    for root in (source, PLUGIN_SOURCES):
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    digest.update((REPO / "requirements.txt").read_bytes())
    return digest.hexdigest()


def build_app(out_dir: Path, version: str = TEST_VERSION, source: Path | None = None, *,
              reuse: bool = True) -> Path:
    """Build the real app package (xz preset 0 for speed); wheels are downloaded once.

    With `reuse`, a package built earlier in this test session from identical inputs is
    copied instead of built again.
    """
    source = source or REPO / "cacherr"
    key = (version, _inputs_digest(source))
    out_dir.mkdir(parents=True, exist_ok=True)
    if reuse and key in _BUILT and _BUILT[key].exists():
        for suffix in ("", ".sha256"):
            shutil.copyfile(f"{_BUILT[key]}{suffix}", out_dir / (_BUILT[key].name + suffix))
        return out_dir / _BUILT[key].name
    build = load_plugin_module("build")
    package = build.build(version, "1", out_dir, WHEELHOUSE, None, TEST_MTIME, source=source,
                          xz_preset=0)
    _BUILT[key] = package
    return package


def standin_pbs_tarball(out_dir: Path, call_log: str | None = None) -> tuple[Path, str]:
    """Write a stand-in python-build-standalone install_only tarball; return it and its SHA256.

    `call_log` is where (as the runtime will see it) each call is logged; None: not logged.
    """
    def add(tar: tarfile.TarFile, name: str, text: str | None = None, mode: int = 0o644,
            link: str | None = None) -> None:
        info = tarfile.TarInfo(name)
        info.mtime = TEST_MTIME
        if link is not None:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
        elif text is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        else:
            data = text.encode()
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

    out_dir.mkdir(parents=True, exist_ok=True)
    tarball = out_dir / f"cpython-{STANDIN_PYTHON_VERSION}+standin-x86_64-unknown-linux-gnu-install_only.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for folder in ("python", "python/bin", "python/lib", "python/lib/python3.12",
                       "python/lib/python3.12/site-packages", "python/lib/python3.12/test"):
            add(tar, folder)
        add(tar, "python/bin/python3.12", STANDIN_LAUNCHER.format(python=sys.executable), 0o755)
        add(tar, "python/bin/python3", link="python3.12")
        add(tar, "python/bin/standin.py", STANDIN_SCRIPT.format(call_log=call_log))
        add(tar, "python/lib/python3.12/standin_stdlib.py", "STANDIN = True\n")
        add(tar, "python/lib/python3.12/test/test_pruned.py", "# pruned by the recipe\n")
    return tarball, sha256_of(tarball)


def build_runtime(out_dir: Path, tarball: Path, sha256: str) -> Path:
    """Run the real runtime recipe (build-runtime.sh) on `tarball`; return the package."""
    done = subprocess.run(
        [str(PLUGIN_SOURCES / "build-runtime.sh"), "--version", STANDIN_PYTHON_VERSION,
         "--tarball", str(tarball), "--sha256", sha256, "--out", str(out_dir)],
        capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": str(TEST_MTIME)})
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def render_plugin(out: Path, app: Path, runtime: Path, changes: str = "- test build",
                  **urls: str) -> Path:
    """Render a .plg for these packages (with their SHA256s) to `out`; return it.

    `urls`: plugin_url and release_url, to serve the plugin from somewhere else."""
    render = load_plugin_module("render_plg")
    out.write_text(render.render(
        app_txz=app.name, app_sha256=sha256_of(app), runtime_txz=runtime.name,
        runtime_sha256=sha256_of(runtime), changes=changes, **urls))
    return out


def make_plugin(out_dir: Path, version: str, tarball: Path, sha256: str,
                flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `make plugin` with a given runtime tarball (the test venv stands in for .venv)."""
    flag_text = " ".join(["--out", str(out_dir), "--xz-preset", "0", *flags])
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "-o", ".venv/.installed", "plugin",
         f"PY={sys.executable}", f"PLUGIN_VERSION={version}", f"PBS_TARBALL={tarball}",
         f"PBS_SHA256={sha256}", f"PBS_PYTHON_VERSION={STANDIN_PYTHON_VERSION}",
         f"PLUGIN_FLAGS={flag_text}"],
        capture_output=True, text=True, env={**os.environ, "CACHERR_WHEELHOUSE": str(WHEELHOUSE)},
        stdin=subprocess.DEVNULL, timeout=600)
