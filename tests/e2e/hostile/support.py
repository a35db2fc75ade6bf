"""Running the real `cacherr` against hostile input: measured (time and peak memory of the
command itself, with the interpreter's start-up left out), capped (an address-space limit
so a regression fails instead of eating the machine), and checked for changes on disk."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
ADDRESS_SPACE_CAP = 2048 * MiB

# Imports the command first, then times main() alone: a bound on the command, not on
# Python's start-up on a busy machine. The measurement goes to the file in argv[2].
_DRIVER = """
import importlib, json, os, resource, sys, time
argv = json.loads(sys.argv[1])
command = next(a for i, a in enumerate(argv) if not a.startswith("-")
               and not (i and argv[i - 1] in ("-c", "--config", "--log-level")))
for module in ("cacherr.cli", "cacherr.config.loader", "cacherr.notify.schemes",
               "cacherr.commands." + command):
    importlib.import_module(module)
from cacherr.cli import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
code = main(argv)
elapsed = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sys.stdout.flush(); sys.stderr.flush()
with open(sys.argv[2], "w") as out:
    json.dump({"code": code, "seconds": elapsed, "growth_kib": after - before,
               "peak_kib": after}, out)
raise SystemExit(code)
"""


@dataclass
class Measured:
    code: int
    stdout: str
    stderr: str
    seconds: float  # main() alone
    growth_mib: float  # peak RSS during main() above the peak before it
    peak_mib: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CACHERR_CONFIG", "CACHERR_LISTEN", "PLEX_TOKEN", "PLEX_URL")}
    env.update(extra or {})
    return env


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


def measured(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 60) -> Measured:
    """Run `cacherr ARGV` in a fresh interpreter; return its exit code, output, and the
    time and memory of the command itself."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "measured.json"
        process = subprocess.Popen(
            [sys.executable, "-c", _DRIVER, json.dumps(list(argv)), str(report)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(env),
            cwd=cwd, preexec_fn=_cap)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if not report.exists():  # it died before main() returned (the cap, a crash)
            return Measured(process.returncode, stdout, stderr, float("inf"), float("inf"),
                            float("inf"))
        result = json.loads(report.read_text())
    return Measured(process.returncode, stdout, stderr, result["seconds"],
                    result["growth_kib"] / 1024, result["peak_kib"] / 1024)


def tree(folder: Path) -> dict[str, tuple]:
    """Every path under `folder` with what would show a change: type, size, mode, mtime,
    and for files their content."""
    found = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root) / name
            status = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() \
                and status.st_size < 4 * MiB else None
            found[str(path.relative_to(folder))] = (status.st_mode, status.st_size,
                                                    status.st_mtime_ns, content)
    return found
