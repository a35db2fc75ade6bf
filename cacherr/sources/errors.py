"""How a source fails: `SourceError` names the source (plex, plextv, trakt) and why.

`FAILURES` are the exceptions a request through plexapi or requests can raise; `failure`
turns one into a SourceError with a short message (no URL query: tokens stay out of logs).
"""

from __future__ import annotations

from xml.etree.ElementTree import ParseError

import plexapi.exceptions
import requests

from cacherr.sources.http import RequestFailed


class SourceError(Exception):
    """A source (plex, plextv, trakt) failed for this cycle."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


FAILURES = (plexapi.exceptions.PlexApiException, RequestFailed, requests.RequestException,
            ParseError, AttributeError, ValueError, TypeError)


def failure(source: str, error: Exception) -> SourceError:
    """The SourceError for an exception a request raised."""
    if isinstance(error, RequestFailed):
        return SourceError(error.source, str(error))
    text = str(error).split(";", 1)[0] if isinstance(error, plexapi.exceptions.PlexApiException) else (
        f"{type(error).__name__}: {error}")
    return SourceError(source, text or type(error).__name__)


def not_found(error: SourceError) -> bool:
    """True when the server answered 404 (the thing asked for does not exist)."""
    return "(404)" in error.message or "not_found" in error.message
