"""Logging setup: human lines or JSON lines on stderr, with secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# Schemes whose host part is a network host; in other Apprise schemes (tgram://BOT_TOKEN/,
# pover://USER@TOKEN) the "host" is itself a secret, so only the scheme is shown.
_HOST_SCHEMES = frozenset({"http", "https", "json", "jsons", "xml", "xmls", "form", "forms",
                           "ws", "wss"})
_URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://([^\s/?#\"'<>]*)([^\s\"'<>]*)", re.IGNORECASE)
# Tokens outside URLs: query-style, Plex's header, bearer tokens, JSON-style secrets.
_SECRET_PATTERNS = (
    (re.compile(r"(X-Plex-Token[=:]\s*)[^&\s\"',;]+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"\b(token=)[^&\s\"',;]+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"\b(Bearer\s+)[^\s\"']+", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"(\"[A-Za-z_]*(?:token|password|secret)\"\s*:\s*\")[^\"]*", re.IGNORECASE),
     r"\1<redacted>"),
)


def redact_url(match: re.Match) -> str:
    scheme, authority, rest = match.group(1), match.group(2), match.group(3)
    host = authority.rpartition("@")[2]
    if scheme.lower() not in _HOST_SCHEMES:
        return f"{scheme}://" + ("..." if authority or rest.strip("/") else "")
    hidden = "@" in authority or rest.strip("/")
    return f"{scheme}://{host}" + ("/..." if hidden else rest)


def redact(text: str) -> str:
    """Given a log or message text, return it with every URL cut to its scheme and host
    (no credentials, path or query; only the scheme where the "host" holds a token) and
    tokens outside URLs replaced."""
    text = _URL.sub(redact_url, text)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_all(value):
    """A JSON-able value with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_all(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_all(item) for item in value]
    return value


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
        if isinstance(getattr(record, "summary", None), dict):
            entry["summary"] = redact_all(record.summary)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


_json_lines = False  # set by setup_logging: how the run's summary is printed


def print_summary(text: str, data: dict) -> None:
    """The one-line summary that ends a run, on stderr: the text, or with `--log-json` a
    JSON log line carrying `data` as its "summary"."""
    if _json_lines:
        logging.getLogger("cacherr.summary").info(text, extra={"summary": data})
    else:
        print(redact(text), file=sys.stderr)


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    """Send cacherr's logs to stderr, as text or JSON lines."""
    global _json_lines
    _json_lines = as_json
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
