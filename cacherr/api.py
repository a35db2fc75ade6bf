"""What cacherr's HTTP API accepts (SPEC §6): the evict request, its limits, and the
parsing of bodies and queries. Shared by the server and by `cacherr evict`'s client."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 4  # {"paths": [...]} is 2
MAX_HOLD_SECONDS = 30 * 86400


@dataclass(frozen=True)
class EvictRequest:
    """A `POST /api/evict` body: paths (as Plex or the host sees them) or all, and a hold."""

    paths: tuple[str, ...] = ()
    all: bool = False
    hold_seconds: float | None = None


class BadRequest(Exception):
    """A request the client must fix: answered 400 with the message."""


class Unavailable(Exception):
    """The service cannot serve the request now (stopping, not ready): answered 503."""


def single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"give {name} at most once")
    return values[0]


def non_negative_int(query: Mapping[str, list[str]], name: str, default: int) -> int:
    text = single(query, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {text!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative")
    return value


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not
    count); counted before parsing, so a deep body never reaches the parser."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_evict_body(body: bytes) -> EvictRequest:
    """Given a `POST /api/evict` body, return its EvictRequest; raise BadRequest if invalid."""
    if json_depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(body or b"{}")
    except ValueError as error:
        raise BadRequest(f"the body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = set(document) - {"paths", "all", "hold_seconds"}
    if unknown:
        raise BadRequest(f"unknown keys: {', '.join(sorted(unknown))}")
    paths = document.get("paths") or []
    if not isinstance(paths, list) or not all(isinstance(path, str) and path for path in paths):
        raise BadRequest("paths must be a list of non-empty strings")
    evict_all = document.get("all", False)
    if not isinstance(evict_all, bool):
        raise BadRequest("all must be true or false")
    if evict_all == bool(paths):
        raise BadRequest("give paths or all: true, not both" if evict_all
                         else "give paths or all: true")
    hold = document.get("hold_seconds")
    if hold is not None and (isinstance(hold, bool) or not isinstance(hold, int | float)
                             or not math.isfinite(hold) or not 0 <= hold <= MAX_HOLD_SECONDS):
        raise BadRequest(f"hold_seconds must be a number from 0 to {MAX_HOLD_SECONDS} "
                         "(30 days), or null")
    return EvictRequest(paths=tuple(paths), all=evict_all,
                        hold_seconds=float(hold) if hold is not None else None)
