"""What runs where: a model in a weight format on a set of devices under one engine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from waveidp.catalog._models import Hardware, ModelSpec, Quant
from waveidp.errors import InputError

if TYPE_CHECKING:
    from waveidp.sizing._data import EngineRule

Engine = Literal["vllm", "llamacpp", "transformers", "trtllm"]
ENGINES: tuple[str, ...] = ("vllm", "llamacpp", "transformers", "trtllm")
ACCELERATOR_KINDS = ("gpu", "soc", "npu")
MAX_CONTEXT = 10_000_000


class Deployment(BaseModel):
    """A model, its quantization and the devices one engine runs it on.

    `devices` lists every device instance: N identical GPUs appear N times (`build` expands
    `tp`). Accelerators (gpu/soc/npu) hold the weights; a CPU in the list is the host whose RAM
    takes what does not fit (llama.cpp `-ngl` split) or, alone, runs the model.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelSpec
    quant: Quant
    devices: list[Hardware] = Field(min_length=1)
    engine: Engine
    tp: int = Field(default=1, ge=1, le=64)
    context: int = Field(
        default=4096, ge=1, le=MAX_CONTEXT, description="tokens per sequence (max-model-len, slot)"
    )
    kv_dtype: str | None = Field(default=None, description="KV cache dtype; None = the engine's default")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    n_gpu_layers: int | None = Field(
        default=None, ge=0, le=10_000, description="llama.cpp -ngl; None = all that fit"
    )
    block_size: int = Field(default=16, ge=1, le=1024)
    parallel: int = Field(
        default=1, ge=1, le=100_000, description="llama.cpp -np slots of `context` tokens each"
    )
    threads: int | None = Field(default=None, ge=1, le=4096, description="CPU threads; None = all cores")
    prompt_cache: bool = Field(
        default=True,
        description="llama-server's host prompt cache (on by default; off with --cache-ram 0)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Deployment:
        accels = self.accelerators
        if self.splits_tensors and accels and len(accels) != self.tp:
            raise ValueError(f"tp={self.tp} but {len(accels)} accelerator(s) listed; list one per GPU")
        hosts = self.hosts
        if len(hosts) > 1:
            raise ValueError("more than one CPU listed; a deployment runs on one host")
        return self

    @property
    def pages_kv(self) -> bool:
        """vLLM and TensorRT-LLM take KV blocks as a sequence grows; llama.cpp reserves each slot's
        whole context."""
        return _rule(self.engine).paged_kv

    @property
    def splits_tensors(self) -> bool:
        """The engine splits each layer across the GPUs listed (tensor parallelism)."""
        return _rule(self.engine).tensor_parallel

    @property
    def max_num_batched_tokens(self) -> int:
        """The engine's token budget per step (vLLM: chunked prefill fills what the running
        requests' decodes leave), by the GPU it runs on."""
        return self._batch_defaults()[0]

    @property
    def max_num_seqs(self) -> int:
        """The most requests the engine runs at once by default."""
        return self._batch_defaults()[1]

    def _batch_defaults(self) -> tuple[int, int]:
        rule = _rule(self.engine)
        large = rule.large_gpu
        accels = self.accelerators
        first = accels[0] if accels else None
        if (
            large
            and first
            and first.memory_bytes >= large.min_memory_bytes
            and first.id not in large.excludes
        ):
            return large.max_num_batched_tokens, large.max_num_seqs
        return rule.max_num_batched_tokens, rule.max_num_seqs

    @property
    def accelerators(self) -> list[Hardware]:
        return [d for d in self.devices if d.kind in ACCELERATOR_KINDS]

    @property
    def hosts(self) -> list[Hardware]:
        return [d for d in self.devices if d.kind == "cpu"]

    @property
    def host(self) -> Hardware | None:
        hosts = self.hosts
        return hosts[0] if hosts else None

    @classmethod
    def build(
        cls,
        model: str | Path | ModelSpec,
        quant: str | Quant | None,
        devices: list[str] | list[Hardware],
        engine: str | None = None,
        **kw: Any,
    ) -> Deployment:
        """Resolve catalog ids (or a config.json/.gguf path) into a Deployment.

        `engine=None` picks vLLM for GPUs and llama.cpp otherwise (or when the quant is GGUF);
        `quant=None` takes the model file's own quant, else bf16 (vLLM) or q4_k_m (llama.cpp);
        with one GPU id and `tp=N`, that GPU is used N times.
        """
        from waveidp import catalog

        tp = int(kw.pop("tp", 1) or 1)
        spec = model if isinstance(model, ModelSpec) else catalog.model(model)
        hw = [d if isinstance(d, Hardware) else catalog.hardware(d) for d in devices]
        if not hw:
            raise InputError(
                "no device given", where="--device", fix="name at least one, e.g. --device rtx-5070-ti"
            )
        q: Quant | None = quant if isinstance(quant, Quant) else (catalog.quant(quant) if quant else None)
        if engine is None:
            gguf = (q is not None and q.family == "gguf") or (q is None and spec.file_quant is not None)
            engine = "llamacpp" if gguf or not any(d.kind == "gpu" for d in hw) else "vllm"
        if engine not in ENGINES:
            raise InputError(
                f"unknown engine '{engine}'", where="--engine", fix=f"use one of {', '.join(ENGINES)}"
            )
        if q is None:
            name = spec.file_quant or ("q4_k_m" if engine == "llamacpp" else "bf16")
            q = catalog.quant(name)
        if q.engines and engine not in q.engines:
            raise InputError(
                f"{engine} does not load {q.id} weights",
                where="--quant",
                fix=f"{q.id} runs on {', '.join(q.engines)}",
            )
        accels = [d for d in hw if d.kind in ACCELERATOR_KINDS]
        others = [d for d in hw if d.kind not in ACCELERATOR_KINDS]
        _check_runs_on(engine, accels or others)
        if tp > 1 and len(accels) == 1:
            accels = accels * tp
        elif tp == 1 and len(accels) > 1 and _rule(engine).tensor_parallel:
            tp = len(accels)
        if tp > 1 and len(accels) != tp:
            raise InputError(
                f"--tp {tp} with {len(accels)} GPUs listed",
                where="--tp",
                fix="list one GPU id (used N times) or exactly N of them",
            )
        if not accels or not _rule(engine).tensor_parallel:
            tp = 1
        fields = {"model": spec, "quant": q, "devices": [*accels, *others], "engine": engine}
        return cls.model_validate({**fields, "tp": tp, **kw})


def _rule(engine: str) -> EngineRule:
    from waveidp.sizing._data import rules

    return rules().engines[engine]


def _check_runs_on(engine: str, devices: list[Hardware]) -> None:
    """Refuse an engine on a device it has no backend for (vLLM on an NPU, TensorRT-LLM off NVIDIA)."""
    from waveidp.sizing._data import rules

    rule = _rule(engine)
    for d in devices:
        if d.kind not in rule.runs_on or (rule.vendors and d.vendor not in rule.vendors):
            where = ", ".join(rule.runs_on) + (f" ({', '.join(rule.vendors)})" if rule.vendors else "")
            others = [e for e, r in rules().engines.items() if d.kind in r.runs_on and e != engine]
            raise InputError(
                f"{engine} does not run on {d.label} ({d.vendor} {d.kind}); it runs on {where}",
                where="--engine",
                fix=f"engines that run there: {', '.join(others)}" if others else "pick another device",
            )
