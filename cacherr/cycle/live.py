"""The engine's `session_check(relative_path)`: is a player reading this file right now?"""

from __future__ import annotations

from collections.abc import Callable

from cacherr.config.model import Config
from cacherr.cycle.locate import Locator
from cacherr.sources.live import LiveSessions


def session_check(config: Config, live: LiveSessions | None = None) -> Callable[[str], bool]:
    """Given the config, return the callback the engine calls before a destructive step."""
    live = live or LiveSessions(config)
    locator = Locator(config)

    def playing(relative_path: str) -> bool:
        for host_path in live.host_paths():
            where = locator.locate(host_path)
            if where is not None and where.relative_path == relative_path:
                return True
        return False

    return playing
