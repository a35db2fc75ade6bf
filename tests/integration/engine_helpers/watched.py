"""Checkpoints that let a test act at a named point of the engine's work."""

from __future__ import annotations

from cacherr.engine.checkpoints import Checkpoints


class Watched(Checkpoints):
    """Checkpoints that call `look(name)` each time the engine reaches one."""

    def __init__(self, look):
        super().__init__()
        self.look = look

    def reached(self, name: str) -> None:
        super().reached(name)
        self.look(name)
