"""Logs: tokens and URL credentials are redacted, and --log-json writes one JSON object
per line for log shippers."""

import io
import json
import logging

import pytest

from cacherr.logs import redact, setup_logging


def test_tokens_and_url_credentials_are_redacted():
    text = redact("GET http://h:32400/library?X-Plex-Token=abc123&x=1 to discord://id:secret@host/")
    assert "abc123" not in text and "secret" not in text
    assert text == "GET http://h:32400/... to discord://..."
    assert redact("header X-Plex-Token: abc123, token=s3cret") == \
        "header X-Plex-Token: <redacted>, token=<redacted>"


@pytest.mark.parametrize(("text", "shown"), [
    ("json://user:pass@127.0.0.1:8080/hook/abc", "json://127.0.0.1:8080/..."),
    ("https://rss.plex.tv/0a1b2c3d-secret-feed", "https://rss.plex.tv/..."),
    ("tgram://123456:BOT-TOKEN/987", "tgram://..."),  # the "host" is the bot's token
    ("pover://userkey@apptoken", "pover://..."),
    ("unraid://", "unraid://"),
    ("serving on http://127.0.0.1:5445", "serving on http://127.0.0.1:5445"),
    ("Authorization: Bearer abcdef0123456789", "Authorization: Bearer <redacted>"),
    ('{"token": "abc", "x": 1}', '{"token": "<redacted>", "x": 1}'),
    ("rules.yaml:3:10: plex.token: expected a string", "rules.yaml:3:10: plex.token: expected a string"),
])
def test_every_url_keeps_only_its_scheme_and_host(text, shown):
    assert redact(text) == shown


def test_json_logs_are_one_object_per_line_and_redacted(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    setup_logging("INFO", as_json=True)
    logging.getLogger("cacherr.test").info("token=%s cached %s", "s3cret", "a.mkv")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["level"] == "INFO" and line["logger"] == "cacherr.test"
    assert line["message"] == "token=<redacted> cached a.mkv"
