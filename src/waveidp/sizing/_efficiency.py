"""Efficiency factors: how much of a device's peak an engine reaches, per (hardware id, engine).

Lookup order: the user's calibration file ($WAVE_HOME/calibration.yaml, written by
`save_calibration`), then per-hardware entries of the shipped `data/efficiency.yaml`, then the
shipped default for the hardware's kind (gpu, cpu, soc, npu) and engine. A GPU the catalog does not
list (`gpu-generic`, described by detection) of a compute capability the file's `architectures`
names takes the factors measured on that architecture's GPU.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from waveidp.catalog._models import GENERIC_GPU, Hardware
from waveidp.errors import ConfigError, InputError
from waveidp.sizing._data import DATA, read_yaml


class Efficiency(BaseModel):
    """Achieved fractions of peak for one (hardware, engine) pair."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decode_bandwidth: float = Field(
        gt=0, le=1, description="achieved share of peak memory bandwidth in decode"
    )
    prefill_compute: float = Field(
        gt=0,
        le=10,
        description="achieved share of peak dense FLOP/s in prefill; on CPUs under llama.cpp a multiplier "
        "on the CPU kernel table's shares (sizing/_cpu.py; 1 = as measured on the reference CPU)",
    )
    step_overhead_s: float = Field(ge=0, le=1, description="fixed time per decode step")
    step_overhead_cycles: float = Field(
        default=0.0,
        ge=0,
        le=1e9,
        description="fixed GPU clock cycles per step (the launches and tails of a step's few hundred "
        "kernels), on top of step_overhead_s, on a device whose clock is stated (Hardware.clock_ghz)",
    )
    decode_lane_compute: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="share of the GPU's CUDA-core (fp32) peak that llama.cpp's single-token decode "
        "kernels reach: the quantized matrix-vector products (MMVQ: each weight unpacked once per step "
        "and dot-multiplied on the integer lanes, batches up to 8) and each sequence's FlashAttention "
        "(its vector kernel); None = not modelled (the step is bytes or the tensor-core compute)",
    )
    first_token_s: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="time between the end of prefill and the first token at the client, per request",
    )
    task_launch_s: float = Field(
        default=0.0,
        ge=0,
        le=0.1,
        description="llama-server's main-thread time to take one queued request into a slot (slot "
        "selection, prompt-cache lookup, sampler set-up); a request that arrives meanwhile still joins "
        "the coming batch",
    )
    sequence_step_s: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="host time per sequence per decode step that does not depend on the vocabulary",
    )
    sequence_step_s_per_vocab: float = Field(
        default=0.0,
        ge=0,
        le=1e-6,
        description="host time per sequence per decode step per vocabulary entry (sampling over the logits)",
    )
    prefill_layer_token_s: float = Field(
        default=0.0,
        ge=0,
        le=1e-3,
        description="floor per layer per prompt token in a batch: small models' matmuls run far below "
        "peak, so their prefill is slower than their FLOPs say",
    )
    host_copy_bytes_per_s: float | None = Field(
        default=None,
        gt=0,
        description="llama-server's device-to-host copy rate on its main thread, which blocks every slot "
        "meanwhile: the host prompt cache's saves and sliding-window checkpoints; None = not measured",
    )
    decode_compute: float | None = Field(
        default=None,
        gt=0,
        le=10,
        description="achieved share of peak in decode matmuls (on CPUs under llama.cpp a multiplier on "
        "the CPU kernel table's shares); None = prefill_compute",
    )
    threads_compute: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="CPUs: share of n x the one-thread compute rate that n >= 2 threads reach (all-core "
        "clocks are lower than one core's boost; threads wait for each other at every op); None = the "
        "CPU kernel table's prior",
    )
    decode_bandwidth_by_quant: dict[str, Annotated[float, Field(gt=0, le=10)]] = Field(
        default_factory=dict,
        description="multiplier on decode_bandwidth per quant id where a format's kernels are measured "
        "to stream weights slower or faster than the others",
    )
    decode_lane_compute_by_quant: dict[str, Annotated[float, Field(gt=0, le=10)]] = Field(
        default_factory=dict,
        description="multiplier on decode_lane_compute per quant id whose blocks take more (or fewer) "
        "instructions to unpack than the K-quants' 4-bit blocks the share was measured on",
    )
    prefill_compute_by_quant: dict[str, Annotated[float, Field(gt=0, le=100)]] = Field(
        default_factory=dict,
        description="multiplier on prefill_compute per quant id where an engine runs a format's prompt "
        "matmuls on other kernels (llama.cpp on CUDA: cuBLAS for f16, its own int8 kernels for GGUF quants)",
    )
    source: str = Field(default="", description="where these factors come from")

    def sequence_seconds(self, vocab_size: int) -> float:
        """Per-sequence host work of one decode step (llama-server samples each slot on the CPU)."""
        return self.sequence_step_s + vocab_size * self.sequence_step_s_per_vocab

    def prefill_compute_for(self, quant: str) -> float:
        return min(1.0, self.prefill_compute * self.prefill_compute_by_quant.get(quant, 1.0))

    def decode_lane_compute_for(self, quant: str) -> float | None:
        if self.decode_lane_compute is None:
            return None
        return min(1.0, self.decode_lane_compute * self.decode_lane_compute_by_quant.get(quant, 1.0))

    def decode_bandwidth_for(self, quant: str) -> float:
        return min(1.0, self.decode_bandwidth * self.decode_bandwidth_by_quant.get(quant, 1.0))


_Table = dict[str, dict[str, Efficiency]]


def _parse(raw: object, path: Path, section: str) -> _Table:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"'{section}' must be a mapping of id -> engine -> factors", where=str(path))
    table: _Table = {}
    for key, engines in raw.items():
        if not isinstance(engines, dict):
            raise ConfigError(f"'{section}.{key}' must map engine names to factors", where=str(path))
        table[str(key)] = {}
        for engine, values in engines.items():
            try:
                table[str(key)][str(engine)] = Efficiency.model_validate(values)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join([section, str(key), str(engine), *map(str, err["loc"])])
                raise ConfigError(err["msg"], where=f"{path}: {loc}") from exc
    return table


@cache
def _shipped() -> tuple[_Table, _Table]:
    path = DATA / "efficiency.yaml"
    raw = read_yaml(path) or {}
    return _parse(raw.get("kinds"), path, "kinds"), _parse(raw.get("devices"), path, "devices")


@cache
def _architectures() -> dict[str, str]:
    """Compute capability -> the hardware id whose measured factors an unlisted GPU of it takes."""
    path = DATA / "efficiency.yaml"
    raw = (read_yaml(path) or {}).get("architectures") or {}
    devices = _shipped()[1]
    for cc, hardware_id in raw.items():
        if hardware_id not in devices:
            raise ConfigError(
                f"'architectures.{cc}' names {hardware_id!r}, which has no devices entry", where=str(path)
            )
    return {str(cc): str(hw) for cc, hw in raw.items()}


def calibration_path() -> Path:
    from waveidp.paths import wave_home

    return wave_home() / "calibration.yaml"


def load_calibration(path: Path) -> dict[str, dict[str, Efficiency]]:
    """The factors a calibration file holds, {hardware id: {engine: Efficiency}}; {} if it is absent."""
    if not path.exists():
        return {}
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping 'devices: {hardware id: {engine: factors}}'", where=str(path))
    return _parse(raw.get("devices"), path, "devices")


def efficiency_for(hardware_id: str, engine: str, *, kind: str | None = None) -> Efficiency:
    """Efficiency of `engine` on `hardware_id`; `kind` skips the catalog lookup for the kind default."""
    user = load_calibration(calibration_path())
    if engine in user.get(hardware_id, {}):
        return user[hardware_id][engine]
    kinds, devices = _shipped()
    if engine in devices.get(hardware_id, {}):
        return devices[hardware_id][engine]
    if kind is None:
        from waveidp import catalog

        kind = catalog.hardware(hardware_id).kind
    by_engine = kinds.get(kind, {})
    if engine in by_engine:
        return by_engine[engine]
    if "llamacpp" in by_engine:
        base = by_engine["llamacpp"]
        return base.model_copy(
            update={"source": f"no {engine} factors for {kind}; using llama.cpp's: {base.source}"}
        )
    raise InputError(
        f"no efficiency factors for engine '{engine}' on a {kind}", fix="add them with `wave calibrate`"
    )


def efficiency_of(hw: Hardware, engine: str) -> Efficiency:
    """`efficiency_for` the hardware's id (for an unlisted GPU, the measured GPU of its architecture's,
    where one is), with the factors measured on this very device (its fleet node's calibration,
    `Hardware.calibration`) on top."""
    eff = efficiency_for(hw.id, engine, kind=hw.kind)
    like = _architectures().get(hw.compute_capability or "") if hw.id == GENERIC_GPU else None
    if (
        like is not None
        and engine in _shipped()[1].get(like, {})
        and engine not in load_calibration(calibration_path()).get(hw.id, {})
    ):
        measured = efficiency_for(like, engine, kind=hw.kind)
        why = f"an unlisted compute capability {hw.compute_capability} GPU takes {like}'s factors"
        eff = measured.model_copy(update={"source": f"{why}: {measured.source}"})
    own = hw.calibration.get(engine)
    if not own:
        return eff
    try:
        return Efficiency.model_validate(
            {**eff.model_dump(), **own, "source": f"calibrated on its node; before that: {eff.source}"}
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            f"{err['msg']}", where=f"calibration of {hw.id} for {engine}: {'.'.join(map(str, err['loc']))}"
        ) from exc


def save_calibration(entries: dict[tuple[str, str], Efficiency], path: Path | None = None) -> Path:
    """Merge measured factors into the user calibration file and return its path."""
    path = path or calibration_path()
    table = load_calibration(path)
    for (hardware_id, engine), eff in entries.items():
        table.setdefault(hardware_id, {})[engine] = eff
    doc = {
        "devices": {
            hw: {e: f.model_dump() for e, f in sorted(engs.items())} for hw, engs in sorted(table.items())
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# Measured efficiency factors (wave calibrate); these win over the shipped defaults.\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )
    tmp.replace(path)
    return path
