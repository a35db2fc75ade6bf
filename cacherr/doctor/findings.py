"""What a doctor check found."""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("ok", "unknown", "warning", "problem")


@dataclass(frozen=True)
class Finding:
    level: str  # ok | unknown | warning | problem
    check: str
    message: str
    fix: str = ""

    def format(self) -> str:
        mark = {"ok": "ok     ", "unknown": "unknown", "warning": "WARN   ",
                "problem": "PROBLEM"}[self.level]
        line = f"{mark} {self.check}: {self.message}"
        return line + (f"\n        fix: {self.fix}" if self.fix else "")
