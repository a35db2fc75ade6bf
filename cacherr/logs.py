"""Logging setup: human lines or JSON lines on stderr, with secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# Plex tokens in URLs and headers, and credentials in Apprise-style URLs.
_SECRET_PATTERNS = (
    (re.compile(r"(X-Plex-Token[=:]\s*)[^&\s\"']+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"(token[=:]\s*)[^&\s\"']+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"([a-z][a-z0-9+.-]*://)([^/@\s:]+)(:[^/@\s]*)?@", re.IGNORECASE),
     r"\1<redacted>@"),
)


def redact(text: str) -> str:
    """Given a log text, return it with tokens and URL credentials replaced."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    """Send cacherr's logs to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # plexapi and urllib3 are chatty at INFO.
    for noisy in ("urllib3", "plexapi"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
