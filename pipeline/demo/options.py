"""What a demo run is asked for, and the error it reports when it cannot do it."""

from __future__ import annotations

from dataclasses import dataclass


class DemoError(RuntimeError):
    """The demo cannot run or went wrong; the message says what, where and what to do."""


@dataclass(frozen=True)
class DemoOptions:
    customers: int = 400
    days: float = 45.0
    minutes: float = 2.0  # real minutes for the simulated span
    seed: int = 42
    startup_seconds: float = 90.0  # deadline for every child to be ready
    drain_seconds: float = 90.0  # deadline for the pipeline to drain after the span

    def check(self) -> None:
        for name in ("customers", "days", "minutes", "startup_seconds", "drain_seconds"):
            if not getattr(self, name) > 0:
                option = "--" + name.replace("_", "-")
                raise DemoError(f"{option} must be positive, got {getattr(self, name)}")

    @property
    def clock_factor(self) -> float:
        """Simulated seconds per real second."""
        return self.days * 86400.0 / (self.minutes * 60.0)
