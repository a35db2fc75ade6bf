"""cacherr's `unraid://` Apprise scheme: Unraid's own notifications through its notify script.

Registered with Apprise's custom-notification decorator so that `unraid://` validates and
works like any other Apprise URL.
"""

from __future__ import annotations

import logging
import os
import subprocess

import apprise
from apprise.decorators import notify

log = logging.getLogger(__name__)

DEFAULT_SCRIPT = "/usr/local/emhttp/webGui/scripts/notify"
_LEVELS = {"info": "normal", "success": "normal", "warning": "warning", "failure": "alert"}

# Set from notify.unraid_script when the config is loaded.
script_path = DEFAULT_SCRIPT


@notify(on="unraid", name="Unraid notifications")
def _unraid(body: str, title: str, notify_type: str, *args, **kwargs) -> bool:
    """Send through Unraid's notify script; False (never an exception) when unavailable."""
    if not os.access(script_path, os.X_OK):
        log.warning("unraid:// notification not sent: %s is not available here", script_path)
        return False
    first_line = body.splitlines()[0] if body else title
    # Unraid's script splits -m on a literal backslash-n, not on newlines.
    message = body.replace("\n", "\\n")
    command = [script_path, "-e", "cacherr", "-s", title or "cacherr", "-d", first_line,
               "-m", message, "-i", _LEVELS.get(str(notify_type), "normal")]
    try:
        completed = subprocess.run(command, timeout=30, capture_output=True, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("unraid:// notification failed: %s", error)
        return False
    return completed.returncode == 0


def url_is_valid(url: str) -> bool:
    """True if Apprise can build a notification service from `url`."""
    return apprise.Apprise.instantiate(url, suppress_exceptions=True) is not None
