"""What is deployed on this machine's `wave up`, and the file that keeps it across restarts.

A `Deployment` is a name clients send (`model` in their requests) served by one engine running one
store model with its flags (a `Revision`); it keeps the revision before it, for a rollback. Its
load-on-demand settings say whether the engine starts only when a request needs it and whether it
is stopped after some idle time.

The file is `WAVE_HOME/deployments.json`, written by the running `wave up` after every deploy, swap,
rollback or removal (atomically), and read by `wave up` as it starts. It is state, not
configuration: as Ollama keeps what it has loaded and GPUStack keeps its deployments in its own
database, `wave deploy` changes a running gateway and the gateway remembers. The fleet file
stays the user's description of the machines (and of remote nodes' engines, which `wave deploy
--on NODE/DEVICE` writes there, since `wave render` reads them from it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from waveidp.errors import ConfigError, InputError
from waveidp.paths import wave_home

STATE_FILE = "deployments.json"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._:-]*$"
DEFAULT_LOAD_TIMEOUT_S = 30.0

# The llama-server flags a deployment may set (those sizing writes, `wave fit`'s engine flags), with
# their bounds; anything else is refused, so the admin API cannot pass arbitrary arguments.
INT_FLAGS = {
    "-c": (1, 10_000_000),
    "-np": (1, 1024),
    "-t": (1, 1024),
    "-ngl": (0, 100_000),
    "--cache-ram": (0, 10**7),
}
CACHE_TYPES = frozenset({"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"})
STR_FLAGS = {"--cache-type-k": CACHE_TYPES, "--cache-type-v": CACHE_TYPES}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_flags(flags: dict[str, int | str]) -> dict[str, int | str]:
    """`flags` if every one is a known llama-server flag with a value in bounds; else ValueError."""
    for flag, value in flags.items():
        if flag in INT_FLAGS:
            lo, hi = INT_FLAGS[flag]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(
                    f"engine flag {flag} must be a whole number from {lo} to {hi}, not {value!r}"
                )
        elif flag in STR_FLAGS:
            if value not in STR_FLAGS[flag]:
                raise ValueError(f"engine flag {flag} must be one of {', '.join(sorted(STR_FLAGS[flag]))}")
        else:
            known = ", ".join([*INT_FLAGS, *STR_FLAGS])
            raise ValueError(f"engine flag {flag!r} is not one a deployment sets (known: {known})")
    return flags


class Revision(_Strict):
    """One engine configuration of a deployment: which store model, where, with which flags."""

    model: str = Field(pattern=NAME_PATTERN, max_length=200, description="store model (wave models list)")
    device: str | None = Field(default=None, max_length=200, description="the device(s) sizing placed it on")
    flags: dict[str, int | str] = Field(default_factory=dict, description="llama-server flags from sizing")

    @field_validator("flags")
    @classmethod
    def _flags(cls, v: dict[str, int | str]) -> dict[str, int | str]:
        return check_flags(v)

    def summary(self) -> str:
        flags = " ".join(f"{k} {v}" for k, v in self.flags.items())
        return f"{self.model} ({flags})" if flags else self.model


class Residence(_Strict):
    """Load on demand: when the engine runs."""

    on_demand: bool = Field(default=False, description="start the engine only when a request needs it")
    idle_unload_s: Annotated[float, Field(gt=0, le=86_400 * 30)] | None = Field(
        default=None, description="stop the engine after this long without a request"
    )
    load_timeout_s: float = Field(
        default=DEFAULT_LOAD_TIMEOUT_S, gt=0, le=3600, description="the longest a request waits for a load"
    )

    @property
    def managed(self) -> bool:
        """The engine is loaded and unloaded by the gateway (not always running)."""
        return self.on_demand or self.idle_unload_s is not None


class Deployment(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=200, description="the model name clients send")
    revision: Revision
    previous: Revision | None = Field(default=None, description="what a rollback returns to")
    residence: Residence = Field(default_factory=Residence)
    updated_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def swapped_to(self, revision: Revision, residence: Residence | None = None) -> Deployment:
        """This deployment serving `revision` from now on, the current one kept for a rollback."""
        return Deployment(
            name=self.name,
            revision=revision,
            previous=self.revision,
            residence=residence or self.residence,
        )

    def rolled_back(self) -> Deployment:
        if self.previous is None:
            raise InputError(
                f"deployment {self.name} has no earlier revision to roll back to",
                where=self.name,
                fix="deploy the model you want with `wave deploy MODEL --name " + self.name + "`",
            )
        return self.swapped_to(self.previous)


class _File(_Strict):
    version: int = 1
    deployments: list[Deployment] = Field(default_factory=list)


def state_path() -> Path:
    return wave_home() / STATE_FILE


def load_deployments(path: Path | None = None) -> list[Deployment]:
    """The recorded deployments (none when the file does not exist)."""
    path = path or state_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        return _File.model_validate(orjson.loads(raw)).deployments
    except (orjson.JSONDecodeError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        what = (
            f"field {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            if first
            else f"not JSON ({exc})"
        )
        raise ConfigError(
            f"the deployments file is damaged: {what}",
            where=str(path),
            fix="fix or remove it (wave up then starts without the recorded deployments)",
        ) from None


def save_deployments(deployments: Iterable[Deployment], path: Path | None = None) -> None:
    """Replace the file so that a crash leaves the old or the new list, never half of one."""
    from waveidp.fleet import write_atomic

    path = path or state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = _File(deployments=sorted(deployments, key=lambda d: d.name))
    write_atomic(path, orjson.dumps(doc.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode() + "\n")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, *, where: str) -> float:
    """`90s`, `10m`, `1h`, `2d` or plain seconds (`45`, `0.5`) as seconds (> 0)."""
    t = text.strip().lower()
    scale = _UNITS.get(t[-1:], 0)
    number = t[:-1] if scale else t
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise InputError(f"cannot read the duration '{text}'", where=where, fix="use e.g. 30s, 10m, 1h")
    return seconds
