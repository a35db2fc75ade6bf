#!/usr/bin/env python3
"""Pack a staged folder into a Slackware package (.txz) that is byte-for-byte reproducible.

Usage: pkgtar.py STAGE_DIR OUT.txz [--mtime EPOCH]

What makes it reproducible and safe to install with pkgtools:
- laid out as Slackware's makepkg lays a package out: the first entry is `./` (mode
  0755: extraction applies it to the target root itself) and every other name is relative
  without a `./` prefix (`usr/...`, `install/doinst.sh`), sorted. installpkg finds the
  install scripts by the names `install/doinst.sh` and `install/slack-desc`: with a `./`
  prefix it would not run doinst.sh, record an empty description, and unpack /install;
- every entry is owned by root:root (uid/gid 0), else upgradepkg would hand the files
  to the build user's uid;
- modes are normalised (directories 0755, files 0755 if the owner may execute, else
  0644), and every mtime is the given one (SOURCE_DATE_EPOCH, else 0);
- GNU tar format (no pax headers with access times), xz with a given preset (the
  preset changes only the size: the same preset gives the same bytes).

Importable: `pack(stage, out, mtime)` returns the SHA256 of the written package.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import os
import stat
import sys
import tarfile
from pathlib import Path

XZ_PRESET = 6


def _entries(stage: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirnames, filenames in os.walk(stage):
        dirnames.sort()
        base = Path(folder)
        found += [base / name for name in dirnames]
        found += [base / name for name in sorted(filenames)]
    return sorted(found, key=lambda path: path.relative_to(stage).as_posix())


def _info(path: Path, name: str, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    status = path.lstat()
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = mtime
    if stat.S_ISLNK(status.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
    elif stat.S_ISDIR(status.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif stat.S_ISREG(status.st_mode):
        info.type = tarfile.REGTYPE
        info.size = status.st_size
        info.mode = 0o755 if status.st_mode & stat.S_IXUSR else 0o644
    else:
        raise ValueError(f"{path}: only files, folders and symlinks can go in a package")
    return info


def pack(stage: str | Path, out: str | Path, mtime: int = 0, preset: int = XZ_PRESET) -> str:
    """Given a staged root folder, write the .txz at `out`; return its SHA256 (hex)."""
    stage, out = Path(stage), Path(out)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        top = _info(stage, "./", mtime)
        tar.addfile(top)
        for path in _entries(stage):
            name = path.relative_to(stage).as_posix()
            info = _info(path, name, mtime)
            if info.type == tarfile.REGTYPE:
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    data = lzma.compress(buffer.getvalue(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64,
                         preset=preset)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return hashlib.sha256(data).hexdigest()


def write_sha256(package: str | Path, digest: str) -> Path:
    """Write `<package>.sha256` in sha256sum's format; return its path."""
    package = Path(package)
    sidecar = package.with_name(package.name + ".sha256")
    sidecar.write_text(f"{digest}  {package.name}\n")
    return sidecar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage")
    parser.add_argument("out")
    parser.add_argument("--xz-preset", type=int, default=XZ_PRESET, choices=range(10))
    parser.add_argument("--mtime", type=int,
                        default=int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    args = parser.parse_args(argv)
    digest = pack(args.stage, args.out, args.mtime, args.xz_preset)
    write_sha256(args.out, digest)
    print(f"{digest}  {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
