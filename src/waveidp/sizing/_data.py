"""The sizing data files (engine memory rules, efficiency defaults), loaded once and typed."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from waveidp.errors import ConfigError

DATA = Path(__file__).parent / "data"
_T = TypeVar("_T", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LargeGpuDefaults(_Strict):
    """The scheduler defaults an engine picks on a large GPU (vLLM's EngineArgs.get_batch_defaults)."""

    min_memory_bytes: int = Field(gt=0)
    excludes: list[str] = Field(default_factory=list, description="hardware ids that keep the small defaults")
    max_num_batched_tokens: int = Field(gt=0)
    max_num_seqs: int = Field(gt=0)


class EngineRule(_Strict):
    runs_on: list[Literal["gpu", "soc", "npu", "cpu"]] = Field(min_length=1)
    vendors: list[str] = Field(default_factory=list, description="vendors it runs on (empty: any)")
    paged_kv: bool = Field(False, description="KV blocks taken as sequences grow, not a context per slot")
    tensor_parallel: bool = Field(False, description="splits each layer across the GPUs listed (--tp)")
    refuses_long_context: bool = Field(False, description="refuses a context beyond the model's trained one")
    default_kv_dtype: str
    cuda_context_bytes: int = Field(ge=0)
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 256
    large_gpu: LargeGpuDefaults | None = None
    free_gpu_memory_fraction: float | None = None
    context_padding: int = 1
    n_ubatch: int = 512
    gpu_free_margin_bytes: int = 0
    source: str


class MemoryRules(_Strict):
    os_reserve_bytes: int
    unified_os_reserve_bytes: int
    host_link_bytes_per_s: float
    tight_fraction: float = Field(gt=0, le=1)
    source: str


class ParallelRules(_Strict):
    allreduce_latency_s: dict[str, float]
    cpu_core_bandwidth_bytes_per_s: float = Field(gt=0)
    source: str


class ClaimRules(_Strict):
    optimistic_factor: float = Field(gt=1)
    default_prompt_tokens: int = Field(ge=1)
    default_output_tokens: int = Field(ge=1)
    source: str


class KvDtypes(_Strict):
    source: str
    values: dict[str, float]


class Rules(_Strict):
    kv_dtype_bytes: KvDtypes
    engines: dict[str, EngineRule]
    memory: MemoryRules
    parallel: ParallelRules
    claims: ClaimRules


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where=where) from exc


def read_typed(path: Path, model: type[_T]) -> _T:
    """A data file read as `model`; the first validation error names the file and field."""
    try:
        return model.model_validate(read_yaml(path))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(err["msg"], where=f"{path}: {'.'.join(map(str, err['loc']))}") from exc


@cache
def rules() -> Rules:
    return read_typed(DATA / "engines.yaml", Rules)
