"""The `.env` file beside the rules file: `NAME=value` lines that `${NAME}` in the rules
file may refer to. Secrets live there, readable by their owner only (0600), so that the
rules file itself can be shown, shared and backed up; the process environment (Docker's
`-e`, the plugin's settings) wins over it."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = ".env"
MAX_BYTES = 64 * 1024
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")


def beside(rules_file: str | Path) -> Path:
    """The .env file that belongs to `rules_file`."""
    return Path(rules_file).absolute().parent / FILE_NAME


def parse(text: str) -> dict[str, str]:
    """Given the text of a .env file, return NAME -> value (quotes and comments removed)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        name, raw = match.group(1), match.group(2).strip()
        if raw[:1] in ("'", '"') and raw[0] in raw[1:]:
            value = raw[1:raw.index(raw[0], 1)]
        else:
            value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        values[name] = value
    return values


def read(path: str | Path) -> dict[str, str]:
    """The values of a .env file; {} when there is none, it cannot be read, or it is
    larger than MAX_BYTES (a .env holds a few lines)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError:
        return {}
    if len(data) > MAX_BYTES:
        return {}
    return parse(data.decode("utf-8", errors="replace"))


def environment(rules_file: str | Path, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` over the values of the .env beside `rules_file` (the environment wins)."""
    return {**read(beside(rules_file)), **environ}


def exposed(path: str | Path) -> bool:
    """True if the .env at `path` exists and others than its owner may read it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def _line(name: str, value: str) -> str:
    if _PLAIN.fullmatch(value):
        return f"{name}={value}"
    if "'" not in value:
        return f"{name}='{value}'"
    return f'{name}="{value}"'


def merge(path: str | Path, values: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Add `values` to the .env at `path` (created 0600, rewritten atomically and kept
    0600); a name it already has keeps its value. Return (added names, names whose
    existing value differs and was kept). Raise OSError if it cannot be written, and
    ValueError for a value that a .env line cannot hold (a newline, both quotes)."""
    path = Path(path)
    for name, value in values.items():
        if "\n" in value or "\r" in value or ("'" in value and '"' in value):
            raise ValueError(f"{name}: the value cannot be written on one .env line")
    try:
        existing_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing_text = ""
    existing = parse(existing_text)
    added = [name for name in values if name not in existing]
    kept = [name for name in values if name in existing and existing[name] != values[name]]
    if not added:
        return added, kept
    text = existing_text
    if text and not text.endswith("\n"):
        text += "\n"
    text += "".join(_line(name, values[name]) + "\n" for name in added)
    descriptor, temporary = tempfile.mkstemp(prefix=".env.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return added, kept
