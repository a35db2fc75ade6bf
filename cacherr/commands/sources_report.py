"""Why a source failed, said so that the user knows what to check (`plan`, `run --once`)."""

from __future__ import annotations

from collections.abc import Mapping

from cacherr.logs import redact

# What to check when a source refuses cacherr's credentials.
_REFUSED_HINTS = {
    "plex": "check plex.token",
    "plextv": "check plex.token (the owner's token; plex.tv refused it)",
    "trakt": "check trakt.client_id",
}


def explain(source: str, why: str) -> str:
    """Given a failed source (plex, plextv, trakt, user:NAME) and its error, return one
    line: `plex: 401 unauthorized — check plex.token`."""
    why = redact(" ".join(str(why).split()))
    refused = any(mark in why for mark in ("401", "403", "nauthorized", "orbidden"))
    hint = _REFUSED_HINTS.get(source) if refused else None
    if refused and source.startswith("user:"):
        hint = f"check plex.user_tokens for {source.removeprefix('user:')}"
    return f"{source}: {why}" + (f" — {hint}" if hint else "")


def lines(failed_sources: Mapping[str, str]) -> list[str]:
    """One line per failed source, sorted."""
    return [explain(source, why) for source, why in sorted(failed_sources.items())]
