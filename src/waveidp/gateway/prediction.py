"""Sizing's prediction of a backend's speed for one model, in the shape the router asks for it, and
how far that prediction deserves to be trusted.

The router must also work without it (a backend whose device or model is not in the catalogs):
then only observed TTFT/ITL count. `from_sizing` returns None whenever sizing cannot say.

`provenance` is the prior's pedigree, which sets how much weight the router's forecast gives it
before observations arrive (`routing.load_curve.PRIOR_SIGMA`):

- `calibrated`: the efficiency factors were measured on this user's own machine (`wave calibrate`
  wrote them to `$WAVE_HOME/calibration.yaml`; a fleet file's per-node calibration says the same
  through `from_sizing(provenance=...)`).
- `reference`: factors measured on the same hardware model elsewhere (the shipped per-device
  entries of `sizing/data/efficiency.yaml`, e.g. the H100's).
- `default`: the catalog's default factors for the device's kind (gpu, cpu, soc): a roofline with
  assumed efficiencies, off by 1.5-2.4x on published measurements and up to 4.5x on a CPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from waveidp.catalog import Hardware

log = logging.getLogger("waveidp.gateway")

Provenance = Literal["calibrated", "reference", "default"]
PROVENANCES: tuple[Provenance, ...] = ("calibrated", "reference", "default")
# Sizing's step times are smooth in the context: the router's prior reads them on a grid of this
# many tokens (prompt sizes and contexts are estimates of +-25 % anyway) and keeps what it read.
CONTEXT_GRID = 128
PROMPT_GRID = 16
# A paged engine (vLLM) runs as many requests as their KV blocks hold: the router counts requests of
# `wave size`'s default shape (512 prompt + 256 output tokens), as sizing and the emulator do.
PAGED_REQUEST_TOKENS = 512 + 256


class Prediction(Protocol):
    @property
    def slots(self) -> int | None: ...

    @property
    def provenance(self) -> Provenance: ...

    def ttft_s(self, prompt_tokens: int) -> float: ...

    def itl_s(self, batch: int, context: int) -> float: ...

    def prompt_steps(self, prompt_tokens: int, running: int) -> int: ...


@dataclass(frozen=True)
class SizingPrediction:
    """Wraps `waveidp.sizing.PerfModel` for one (device set, model, quant, engine).

    `ttft_s` is an idle engine's time to the first token by sizing's model of its scheduler
    (`sizing.idle_ttft_seconds`: llama-server's loop for llama.cpp, with its launch window and prompt
    batches; vLLM's `PagedLoop`, with the prompt cut into steps of the GPU's token budget; then the
    engine's fixed delay to the first streamed token), `itl_s` one decode step at a batch and mean
    context, `prompt_steps` the steps `PagedLoop` cuts a prompt into: what `wave size` and
    `wave emulate` give with the same model."""

    perf: Any
    slots: int | None
    provenance: Provenance = "default"
    _memo: dict[tuple[int, int], float] = field(default_factory=dict, compare=False, repr=False)
    _steps: dict[tuple[int, int], int] = field(default_factory=dict, compare=False, repr=False)

    def ttft_s(self, prompt_tokens: int) -> float:
        key = (0, max(1, (prompt_tokens + PROMPT_GRID // 2) // PROMPT_GRID))
        found = self._memo.get(key)
        if found is None:
            n = key[1] * PROMPT_GRID
            from waveidp.sizing import idle_ttft_seconds

            found = self._memo[key] = float(idle_ttft_seconds(self.perf, n))
        return found

    def itl_s(self, batch: int, context: int) -> float:
        key = (max(1, batch), max(1, (context + CONTEXT_GRID // 2) // CONTEXT_GRID))
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = float(self.perf.decode_step_seconds(key[0], key[1] * CONTEXT_GRID))
        return found

    def prompt_steps(self, prompt_tokens: int, running: int) -> int:
        """Engine steps a prompt that arrives beside `running` generating requests is cut into (vLLM's
        token budget, `waveidp.sizing.prompt_steps`); 1 for an engine that takes a prompt whole."""
        key = (max(0, running), max(1, (prompt_tokens + PROMPT_GRID // 2) // PROMPT_GRID))
        found = self._steps.get(key)
        if found is None:
            from waveidp.sizing import prompt_steps

            found = self._steps[key] = prompt_steps(self.perf.d, key[0], key[1] * PROMPT_GRID)
        return found


def from_sizing(
    model: str | None,
    quant: str | None,
    devices: list[str] | list[Hardware],
    engine: str,
    max_concurrency: int | None,
    provenance: Provenance | None = None,
) -> SizingPrediction | None:
    """Build a prediction through `waveidp.sizing`, or None (logged) when it cannot. `provenance`
    overrides what the efficiency lookup says (a node calibrated in the fleet file)."""
    if not model or not devices:
        return None
    try:
        from waveidp import sizing

        deployment = sizing.Deployment.build(model, quant, devices, engine)
        perf = sizing.PerfModel(deployment)
        slots = max_concurrency
        if slots is None:
            slots = sizing.paged_capacity(deployment, PAGED_REQUEST_TOKENS)
        if slots is None:
            cap = perf.kv_capacity_tokens()
            slots = max(1, int(cap // 4096)) if cap else None
        primary = (deployment.accelerators or deployment.devices)[0]
        calibrated = deployment.engine in (primary.calibration or {})  # measured on its node (fleet file)
        origin = provenance or (
            "calibrated" if calibrated else efficiency_provenance(primary.id, deployment.engine, primary.kind)
        )
        return SizingPrediction(perf, slots, origin)
    except Exception as exc:  # sizing is advisory: a gap in the catalogs must not stop serving
        log.info("no sizing prediction for %s on %s (%s): %s", model, devices, engine, exc)
        return None


def efficiency_provenance(hardware_id: str, engine: str, kind: str) -> Provenance:
    """Where sizing's efficiency factors for (`hardware_id`, `engine`) come from, by the lookup
    order of `sizing.efficiency_for`: the user's calibration file, a shipped entry for this
    hardware, or the default of its kind (what an id that is in no table gets)."""
    from waveidp import sizing

    found = sizing.efficiency_for(hardware_id, engine, kind=kind)
    if found == sizing.efficiency_for("", engine, kind=kind):
        return "default"
    path = sizing.calibration_path()
    if path.exists():
        import yaml

        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            raw = {}
        devices = raw.get("devices") if isinstance(raw, dict) else None
        if isinstance(devices, dict) and engine in (devices.get(hardware_id) or {}):
            return "calibrated"
    return "reference"
