"""Human durations (`1h30m`) and sizes (`500GiB`, `80%`)."""

from __future__ import annotations

import re

from cacherr.config.model import Size

_DURATION_PART = re.compile(r"([0-9]+)([smhdw])")
_DURATION = re.compile(r"^([0-9]+[smhdw])+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
_PERCENT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)%$")
_UNIT_BYTES = {
    "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}


def parse_duration(text: str) -> float:
    """Given `90s`, `30m`, `1h30m`..., return seconds; raise ValueError otherwise (bare numbers too)."""
    text = text.strip()
    if not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration (e.g. 90s, 30m, 48h, 7d, 1h30m)")
    return float(sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text)))


def parse_size(text: str, *, allow_percent: bool = True) -> Size:
    """Given `500GiB`, `1.5TB` or `80%`, return a Size; raise ValueError otherwise.

    A percentage must be in (0, 100].
    """
    text = text.strip()
    match = _SIZE.match(text)
    if match:
        return Size(bytes=int(float(match.group(1)) * _UNIT_BYTES[match.group(2)]))
    match = _PERCENT.match(text)
    if match and allow_percent:
        percent = float(match.group(1))
        if not 0 < percent <= 100:
            raise ValueError(f"{text!r}: a percentage must be more than 0 and at most 100")
        return Size(percent=percent)
    if match:
        raise ValueError(f"{text!r}: a percentage is not allowed here; give a size like 40GiB")
    raise ValueError(f"{text!r} is not a size (e.g. 500GiB, 20GB or 80%)")


def format_bytes(count: float) -> str:
    """Given a byte count, return it in binary units, e.g. `1.5 GiB`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
