"""What a plan is: one decision per (service, node), grouped by MoSCoW priority."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Priority = Literal["must", "should", "could", "wont"]
PRIORITIES: tuple[Priority, ...] = ("must", "should", "could", "wont")
Profile = Literal["single-user", "team"]


def rank(p: Priority) -> int:
    """0 for must ... 3 for wont (lower is more important)."""
    return PRIORITIES.index(p)


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    name: str
    priority: Priority
    node: str | None = Field(description="where it runs; None when no node can or should run it")
    reason: str = Field(description="one sentence")
    category: str
    licence: str
    seed: str = Field(description="what the seed documents said about it, e.g. 'must (000, 003)'")
    uncertainties: tuple[str, ...] = ()


class Plan(BaseModel):
    fleet: str
    profile: Profile
    goals: tuple[str, ...]
    licences: tuple[str, ...]
    must: list[Decision] = Field(default_factory=list)
    should: list[Decision] = Field(default_factory=list)
    could: list[Decision] = Field(default_factory=list)
    wont: list[Decision] = Field(default_factory=list)
    uncertainties: list[str] = Field(
        default_factory=list, description="fleet-wide questions the plan cannot settle"
    )

    def decisions(self) -> list[Decision]:
        return [*self.must, *self.should, *self.could, *self.wont]

    def on_node(self, node: str, *, up_to: Priority = "should") -> list[Decision]:
        """Decisions placed on `node` with priority `up_to` or higher (what render deploys)."""
        return [d for d in self.decisions() if d.node == node and rank(d.priority) <= rank(up_to)]

    def runs(self, service: str, node: str, *, up_to: Priority = "should") -> bool:
        return any(d.service == service for d in self.on_node(node, up_to=up_to))
