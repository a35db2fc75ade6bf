"""Benchmark: cacherr's durable copy against `cp` + `sync`, on real disks.

Copies one file (2 GiB by default) from a folder on the disk to an ext4 image on a loop
device with direct I/O (another file system, disk-backed), dropping the page cache before
each run.
Five runs each, alternating; prints the median ratio for `verify: size` (target <= 1.10)
and `verify: checksum` (target <= 1.5). Needs root (loop mount, drop_caches); skips
otherwise. `--size 256MiB` runs it smaller.
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# Python puts this file's folder first on sys.path, where a bench named like a standard
# module would shadow it; import from the repository root instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cacherr.config.model import UnionLayout
from cacherr.engine import Engine
from cacherr.state.ledger import Ledger

REL = "Movies/Bench (2024)/bench.mkv"
UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "B": 1}


def parse_size(text: str) -> int:
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def write_source(path: Path, size: int) -> None:
    block = os.urandom(64 * 1024 * 1024)
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            left -= handle.write(block[: min(left, len(block))])
        handle.flush()
        os.fsync(handle.fileno())


def write_image(path: Path, size: int) -> None:
    """A fully written image: no sparse holes for the host file system to fill during a run."""
    block = bytes(64 * 1024 * 1024)
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            left -= handle.write(block[: min(left, len(block))])
        handle.flush()
        os.fsync(handle.fileno())


def time_cp(source: Path, target: Path) -> float:
    drop_caches()
    started = time.perf_counter()
    subprocess.run(["cp", "--preserve=all", str(source), str(target)], check=True)
    subprocess.run(["sync"], check=True)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def time_engine(engine: Engine, fast_copy: Path) -> float:
    drop_caches()
    started = time.perf_counter()
    engine.cache(REL)
    elapsed = time.perf_counter() - started
    assert fast_copy.exists()
    engine.evict(REL)
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2GiB", help="file size, e.g. 2GiB, 256MiB")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default="/var/tmp", help="a folder on the disk to work in")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/copy_speed.py: skipped: needs root (loop mount, drop_caches)")
        return 0
    for tool in ("mkfs.ext4", "losetup", "mount", "umount", "cp", "sync"):
        if shutil.which(tool) is None:
            print(f"bench/copy_speed.py: skipped: {tool} is not installed")
            return 0
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="cacherr-bench-", dir=args.dir))
    mount_point = work / "pool"
    loop_device = ""
    try:
        slow = work / "disk1"
        (slow / REL).parent.mkdir(parents=True)
        source = slow / REL
        write_source(source, size)
        image = work / "pool.img"
        write_image(image, int(size * 1.5) + 256 * 1024 * 1024)
        # No discard (the image stays fully written), and inode tables initialised now rather
        # than by a background thread during the timed runs.
        subprocess.run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-E",
                "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
                str(image),
            ],
            check=True,
        )
        mount_point.mkdir()
        # Direct I/O on the loop device: what reaches it goes to the disk, not into the host's
        # page cache, so `sync` and fsync both wait for the disk (a real pool's behaviour).
        loop_device = subprocess.run(
            ["losetup", "--find", "--show", "--direct-io=on", str(image)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        subprocess.run(["mount", loop_device, str(mount_point)], check=True)
        (mount_point / "Movies").mkdir()
        cp_target = mount_point / "Movies" / "cp-copy.mkv"
        union = UnionLayout(view=None, fast=mount_point, slow=(slow,))  # type: ignore[arg-type]
        results: dict[str, list[float]] = {"cp": [], "size": [], "checksum": []}
        engines = {
            verify: Engine(
                Ledger.open(work / f"state-{verify}"),
                layout="union",
                original="shadow",
                union=union,
                verify=verify,
            )
            for verify in ("size", "checksum")
        }
        for run in range(args.runs):
            order = ["cp", "size", "checksum"] if run % 2 == 0 else ["checksum", "size", "cp"]
            for what in order:
                if what == "cp":
                    results["cp"].append(time_cp(source, cp_target))
                else:
                    results[what].append(time_engine(engines[what], mount_point / REL))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items()))
        cp_median = statistics.median(results["cp"])
        print(f"file {size / 1024**2:.0f} MiB, {args.runs} runs, page cache dropped before each")
        print(f"cp + sync median: {cp_median:.2f}s ({size / cp_median / 1024**2:.0f} MiB/s)")
        targets = {"size": 1.10, "checksum": 1.5}
        failed = False
        for verify, target in targets.items():
            median = statistics.median(results[verify])
            ratio = median / cp_median
            verdict = "ok" if ratio <= target else "OVER TARGET"
            failed |= ratio > target
            best = min(results[verify]) / min(results["cp"])
            print(
                f"engine verify={verify}: median {median:.2f}s, ratio {ratio:.2f} "
                f"(target <= {target}) {verdict}; best-run ratio {best:.2f}"
            )
        return 1 if failed else 0
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)
        if loop_device:
            subprocess.run(["losetup", "-d", loop_device], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
