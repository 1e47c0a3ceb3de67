"""The MoSCoW rule table (`rules.yaml`), typed."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from waveidp.errors import ConfigError
from waveidp.plan._models import Priority, Profile

RULES_FILE = Path(__file__).parent / "rules.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(_Strict):
    always: bool = False
    min_compute_capability: str | None = None
    hardware_class: str | None = None
    profile: Profile | None = None


class Uncertainty(_Strict):
    text: str
    when: When = Field(default_factory=When)


class ServiceRule(_Strict):
    priority: dict[Profile, Priority]
    placement: str = Field(pattern=r"^(backends|every-node|largest-gpu|services-node|intel-node|cluster)$")
    why: str
    seed: str = "absent"
    engine: str | None = None
    goals: dict[str, Priority] = Field(default_factory=dict)
    only_for_goals: tuple[str, ...] = ()
    without_licence: Priority | None = None
    instead: str | None = None
    uncertainties: tuple[Uncertainty, ...] = ()


class Rules(_Strict):
    source: str
    goals: dict[str, str]
    default_goals: tuple[str, ...]
    hardware_classes: dict[str, str]
    arm_hardware: str
    services: dict[str, ServiceRule]


@functools.cache
def rules(path: Path = RULES_FILE) -> Rules:
    try:
        return Rules.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{field}: {err['msg']}", where=str(path)) from None
