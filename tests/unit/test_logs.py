"""Logs: tokens and URL credentials are redacted, and --log-json writes one JSON object
per line for log shippers."""

import io
import json
import logging

from cacherr.logs import redact, setup_logging


def test_tokens_and_url_credentials_are_redacted():
    text = redact("GET http://h:32400/library?X-Plex-Token=abc123&x=1 to discord://id:secret@host/")
    assert "abc123" not in text and "secret" not in text
    assert "X-Plex-Token=<redacted>" in text


def test_json_logs_are_one_object_per_line_and_redacted(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    setup_logging("INFO", as_json=True)
    logging.getLogger("cacherr.test").info("token=%s cached %s", "s3cret", "a.mkv")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["level"] == "INFO" and line["logger"] == "cacherr.test"
    assert line["message"] == "token=<redacted> cached a.mkv"
