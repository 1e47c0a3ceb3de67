"""What `estimate` is asked: a deployment and one request shape, with the bounds a user may give."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from waveidp.sizing._deployment import Deployment

Arrival = Literal["burst", "steady"]
ARRIVALS: tuple[Arrival, ...] = ("burst", "steady")


class SizingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: Deployment
    prompt_tokens: int = Field(default=512, ge=1, le=10_000_000)
    output_tokens: int = Field(default=256, ge=1, le=10_000_000)
    concurrency: int = Field(default=1, ge=1, le=100_000)
    arrival: Arrival = Field(
        default="burst",
        description="burst: the clients start together (wave bench's default); steady: spread out",
    )
