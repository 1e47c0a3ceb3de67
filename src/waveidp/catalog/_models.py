"""Typed catalog entries. Units are base units (bytes, bytes/s, FLOP/s, watts) in code;
the YAML files use the units datasheets use and the loaders convert."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# the hardware entry for a CPU the catalog does not list; detection describes the real one over it
GENERIC_CPU = "cpu-generic"
# the hardware entry for an NVIDIA GPU the catalog does not list; detection describes it the same way
GENERIC_GPU = "gpu-generic"
DeviceKind = Literal["gpu", "cpu", "npu", "soc"]
Dtype = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "fp4", "int8", "int4"]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    name: str
    source: str = Field(min_length=3, description="where the numbers of this entry come from")
    sources: dict[str, str] = Field(default_factory=dict, description="per-field sources overriding `source`")

    def source_of(self, field: str) -> str:
        """Source of `field` (or of `field.sub`, e.g. `dense_flops.fp8`), falling back to the entry's."""
        while field:
            if field in self.sources:
                return self.sources[field]
            field = field.rpartition(".")[0]
        return self.source


class Hardware(_Entry):
    """One accelerator, CPU or SoC model (not an instance: a fleet device points at one)."""

    @property
    def label(self) -> str:
        """How output names it: the catalog id, or for an unlisted CPU or GPU the name detection read."""
        return self.name if self.id in (GENERIC_CPU, GENERIC_GPU) else self.id

    kind: DeviceKind
    vendor: str
    memory_bytes: int = Field(gt=0, description="device memory (GPU VRAM, or system RAM for a CPU/SoC)")
    memory_bandwidth_bytes_per_s: float = Field(gt=0)
    dense_flops: dict[Dtype, float] = Field(description="dense (non-sparse) peak FLOP/s or OP/s per dtype")
    fp8: bool = False
    fp4: bool = False
    compute_capability: str | None = None
    clock_ghz: float | None = Field(
        default=None,
        gt=0,
        description="GPU (SM) clock the dense peaks are given at: what per-step costs counted in GPU cycles "
        "take (efficiency.yaml step_overhead_cycles); None = not stated",
    )
    unified_memory: bool = False
    interconnect_bandwidth_bytes_per_s: float | None = Field(
        default=None, description="per-direction GPU-GPU (NVLink) or host link (PCIe) bandwidth"
    )
    interconnect: str | None = None
    tdp_watts: float | None = None
    cores: int | None = None
    cpu_flags: tuple[str, ...] = ()
    threads: int | None = Field(default=None, description="logical CPUs (SMT threads); None = cores")
    core_bandwidth_bytes_per_s: float | None = Field(
        default=None, gt=0, description="what one core streams from memory, measured (a CPU thread's limit)"
    )
    calibration: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="engine -> efficiency factors measured on this device (its fleet node's calibration)",
    )


class ModelSpec(_Entry):
    """A transformer's architecture: what sizing needs, nothing else."""

    architecture: str
    params: int = Field(gt=0, description="total parameters")
    active_params: int | None = Field(default=None, description="parameters used per token (MoE); None = all")
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_context: int = Field(gt=0)
    tied_embeddings: bool = False
    sliding_window: int | None = None
    sliding_window_layers: int = Field(default=0, ge=0, description="layers whose KV is capped at the window")
    file_quant: str | None = Field(default=None, description="quantization of the file it was read from")
    file_bytes: int | None = Field(default=None, description="size of the weights file it was read from")
    file_weight_types: dict[str, dict[str, int]] | None = Field(
        default=None,
        description="matmul weights of the file it was read from: 'layers' / 'output' / 'embedding' (an "
        "untied token embedding) -> GGUF tensor type -> parameters (a q4_k_m file may hold q5_0 and q8_0 "
        "tensors where a row is not a multiple of 256)",
    )

    @property
    def params_per_token(self) -> int:
        return self.active_params or self.params


class Quant(_Entry):
    """A weight format: how many bits each weight costs and which math units run it."""

    bits_per_weight: float = Field(gt=0, le=32)
    family: Literal["float", "int", "gguf"]
    compute_dtype: Dtype = Field(description="the dtype whose TFLOPS bound prefill math")
    engines: tuple[str, ...] = Field(description="engines that load this format")
    requires_fp8: bool = False
    requires_fp4: bool = False
