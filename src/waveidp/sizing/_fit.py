"""`wave fit`: which device of a node (or fleet) runs a model best, in which format and engine."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, Field

from waveidp.catalog._models import Hardware, ModelSpec, Quant
from waveidp.errors import WaveError
from waveidp.sizing._deployment import Deployment
from waveidp.sizing._estimate import estimate
from waveidp.sizing._request import SizingRequest

VERDICT_RANK = {"fits": 0, "tight": 1, "offload": 2, "impossible": 3}
DEFAULT_QUANTS = {"vllm": ("bf16", "fp8", "awq"), "llamacpp": ("q4_k_m", "q8_0")}


class Variant(BaseModel):
    """One file of a model in one format (a store model), with what its format costs in quality."""

    spec: ModelSpec
    kld_p95: float | None = Field(default=None, description="95th-percentile KLD against the base (base: 0)")
    refused: bool = Field(default=False, description="a quality policy refused this format")


class FitRow(BaseModel):
    node: str
    devices: list[str]
    device_labels: list[str] = Field(
        description="each device as a person reads it: its catalog id, or the detected name of a CPU the "
        "catalog does not list"
    )
    model: str
    quant: str
    engine: str
    verdict: str
    bits_per_weight: float
    decode_tokens_per_s: float
    ttft_ms: float
    max_concurrency: int
    total_bytes: int
    reason: str
    engine_flags: dict[str, str | int | float]
    variant: str | None = Field(default=None, description="the store model (file) chosen among the variants")
    kld_p95: float | None = None


class DeviceEntry(Protocol):
    """A fleet file's device as sizing reads it (`fleet.models.Device`)."""

    @property
    def hardware(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def memory_gib(self) -> float | None: ...
    @property
    def cores(self) -> int | None: ...


class NodeEntry(Protocol):
    """A fleet file's node as sizing reads it (`fleet.models.Node`)."""

    @property
    def name(self) -> str: ...
    @property
    def devices(self) -> Sequence[DeviceEntry]: ...


def node_hardware(
    devices: Iterable[DeviceEntry], hardware_of: Callable[[Any], Hardware] | None = None
) -> tuple[list[tuple[Hardware, int]], Hardware | None]:
    """A node's accelerators (hardware, count) and its host CPU: what `fit_node` takes. Each device
    is `hardware_of(device)` (`fleet.device_hardware` with its node: detected description and
    calibration), else its catalog entry with the fleet file's memory and cores applied."""
    from waveidp import catalog

    accels: list[tuple[Hardware, int]] = []
    host: Hardware | None = None
    for dev in devices:
        if hardware_of is not None:
            hw = hardware_of(dev)
        else:
            hw = catalog.hardware(dev.hardware)
            update: dict[str, object] = {}
            if dev.memory_gib:
                update["memory_bytes"] = int(dev.memory_gib * 1024**3)
            if hw.kind == "cpu" and dev.cores:
                update["cores"] = dev.cores
            hw = hw.model_copy(update=update) if update else hw
        if hw.kind == "cpu":
            host = hw
        else:
            accels.append((hw, dev.count))
    return accels, host


def _candidates(
    accels: list[tuple[Hardware, int]], host: Hardware | None
) -> list[tuple[list[Hardware], str]]:
    out: list[tuple[list[Hardware], str]] = []
    for hw, count in accels:
        if hw.kind == "gpu":
            out.append(([hw] * count, "vllm"))
        out.append(([hw, *([host] if host else [])], "llamacpp"))
    if host is not None:
        out.append(([host], "llamacpp"))
    return out


def fit_node(
    node: str,
    accels: list[tuple[Hardware, int]],
    host: Hardware | None,
    models: list[ModelSpec],
    quants: dict[str, Quant],
    *,
    quant: str | None = None,
    context: int = 4096,
    prompt_tokens: int = 512,
    output_tokens: int = 256,
    variants: dict[str, list[Variant]] | None = None,
    max_kld_p95: float | None = None,
) -> list[FitRow]:
    """The best (quant, engine) per model and device group of one node, best first.

    A model with `variants` (the formats of one model in the store) is sized once per variant file.
    Among those with the best verdict, a format whose measured KLD p95 is within `max_kld_p95` wins
    over one not known to be (the fastest of them); otherwise the most precise format wins, as for
    catalog models. Formats a quality policy refused are never chosen.
    """
    rows: list[FitRow] = []
    for model in models:
        ctx = min(context, model.max_context)
        choices = [v for v in (variants or {}).get(model.id) or [Variant(spec=model)] if not v.refused]
        if quant and any(v.spec.file_quant == quant for v in choices):
            choices = [v for v in choices if v.spec.file_quant == quant]
        for devices, engine in _candidates(accels, host):
            options: list[tuple[Variant, str]] = []
            for v in choices:
                spec = v.spec
                names = [quant] if quant else [spec.file_quant] if spec.file_quant else DEFAULT_QUANTS[engine]
                options += [(v, n) for n in names]
            found: list[FitRow] = []
            for v, qname in options:
                spec = v.spec
                q = quants.get(qname)
                if q is None or (q.engines and engine not in q.engines):
                    continue
                if q.requires_fp8 and not all(d.fp8 for d in devices if d.kind == "gpu"):
                    continue
                try:
                    d = Deployment.build(
                        spec, q, devices, engine, tp=len(devices) if engine == "vllm" else 1, context=ctx
                    )
                    r = estimate(
                        SizingRequest(
                            deployment=d,
                            prompt_tokens=min(prompt_tokens, ctx // 2),
                            output_tokens=min(output_tokens, ctx // 4),
                        )
                    )
                except WaveError:
                    continue
                row = FitRow(
                    node=node,
                    devices=[h.id for h in d.devices],
                    device_labels=[h.label for h in d.devices],
                    model=model.id,
                    quant=q.id,
                    engine=engine,
                    verdict=r.verdict,
                    bits_per_weight=q.bits_per_weight,
                    decode_tokens_per_s=round(1000.0 / r.performance.itl_ms, 2),
                    ttft_ms=r.performance.ttft_ms,
                    max_concurrency=r.max_concurrency,
                    total_bytes=r.memory.total_bytes,
                    reason=r.reasons[0] if r.reasons else "",
                    engine_flags=r.engine_flags,
                    variant=spec.id if spec.id != model.id or len(choices) > 1 else None,
                    kld_p95=v.kld_p95,
                )
                found.append(row)
            if found:
                rows.append(min(found, key=lambda r: _key(r, max_kld_p95)))
    rows.sort(key=lambda r: (r.model, *_key(r, None)))
    return rows


def _key(r: FitRow, max_kld_p95: float | None) -> tuple[float, ...]:
    # the best verdict first; then a format measured within the KLD limit, the fastest of those;
    # else the most precise format (bits per weight), the lower measured KLD, then speed
    verdict = VERDICT_RANK[r.verdict]
    if max_kld_p95 is not None and r.kld_p95 is not None and r.kld_p95 <= max_kld_p95:
        return verdict, 0, -r.decode_tokens_per_s, r.kld_p95, 0
    kld = r.kld_p95 if r.kld_p95 is not None else float("inf")
    return verdict, 1, -r.bits_per_weight, kld, -r.decode_tokens_per_s


def _of_node(hardware_of: Callable[[Any, Any], Hardware], node: Any, device: Any) -> Hardware:
    return hardware_of(device, node)


def fit_fleet(
    nodes: Sequence[NodeEntry],
    models: list[ModelSpec],
    *,
    quant: str | None = None,
    context: int = 4096,
    variants: dict[str, list[Variant]] | None = None,
    max_kld_p95: float | None = None,
    hardware_of: Callable[[Any, Any], Hardware] | None = None,
) -> list[FitRow]:
    """`wave fit` over nodes: per model, best verdict first, then the fastest decode. `hardware_of`
    (device, node) -> Hardware is `fleet.device_hardware` for a fleet's nodes."""
    from waveidp import catalog

    quants = dict(catalog.all_quants())
    rows: list[FitRow] = []
    for node in nodes:
        of = functools.partial(_of_node, hardware_of, node) if hardware_of is not None else None
        accels, host = node_hardware(node.devices, of)
        rows += fit_node(
            node.name,
            accels,
            host,
            models,
            quants,
            quant=quant,
            context=context,
            variants=variants,
            max_kld_p95=max_kld_p95,
        )
    rows.sort(key=lambda r: (r.model, VERDICT_RANK[r.verdict], -r.decode_tokens_per_s))
    return rows
