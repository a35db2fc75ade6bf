"""SIGTERM stops the current copy cleanly: the handler only sets the engine's cancel event;
the copy loop sees it between two chunks, removes its temporary file and raises Cancelled."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any


def cancel_on_sigterm(cancel: threading.Event) -> Callable[..., Any] | int | None:
    """Given the engine's cancel event, make SIGTERM set it; return the previous handler.

    Call from the main thread (Python delivers signals there).
    """

    def handler(signum: int, frame: object) -> None:
        cancel.set()

    return signal.signal(signal.SIGTERM, handler)
