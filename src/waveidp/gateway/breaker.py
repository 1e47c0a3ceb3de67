"""A circuit breaker per backend: closed -> open after repeated failures -> half-open trial -> closed.

Time is passed in (monotonic seconds) so the state machine is tested without clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half-open"]


@dataclass
class CircuitBreaker:
    failure_threshold: int = 3
    base_cooldown_s: float = 1.0
    max_cooldown_s: float = 30.0
    state: State = "closed"
    failures: int = 0
    opened_at: float = 0.0
    cooldown_s: float = 1.0
    trial_in_flight: bool = False

    def allows(self, now: float) -> bool:
        """Whether a request may go to this backend now (a half-open breaker lets one through)."""
        if self.state == "closed":
            return True
        if self.state == "open" and now - self.opened_at >= self.cooldown_s:
            self.state = "half-open"
            self.trial_in_flight = False
        return self.state == "half-open" and not self.trial_in_flight

    def on_attempt(self) -> None:
        if self.state == "half-open":
            self.trial_in_flight = True

    def on_success(self) -> None:
        self.state = "closed"
        self.failures = 0
        self.cooldown_s = self.base_cooldown_s
        self.trial_in_flight = False

    def on_failure(self, now: float, *, fatal: bool = False) -> None:
        """Record a failure; `fatal` (connection refused) opens the breaker at once."""
        self.failures += 1
        if self.state == "half-open":
            self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
            self._open(now)
        elif self.state == "closed" and (fatal or self.failures >= self.failure_threshold):
            self.cooldown_s = self.base_cooldown_s
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = "open"
        self.opened_at = now
        self.trial_in_flight = False
