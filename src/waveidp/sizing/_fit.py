"""`wave fit`: which device of a node (or fleet) runs a model best, in which format and engine."""

from __future__ import annotations

from pydantic import BaseModel

from waveidp.catalog._models import Hardware, ModelSpec, Quant
from waveidp.errors import WaveError
from waveidp.sizing._deployment import Deployment
from waveidp.sizing._estimate import estimate
from waveidp.sizing._request import SizingRequest

VERDICT_RANK = {"fits": 0, "tight": 1, "offload": 2, "impossible": 3}
DEFAULT_QUANTS = {"vllm": ("bf16", "fp8", "awq"), "llamacpp": ("q4_k_m", "q8_0")}


class FitRow(BaseModel):
    node: str
    devices: list[str]
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
) -> list[FitRow]:
    """The best (quant, engine) per model and device group of one node, best first."""
    rows: list[FitRow] = []
    for model in models:
        ctx = min(context, model.max_context)
        for devices, engine in _candidates(accels, host):
            names = [quant] if quant else [model.file_quant] if model.file_quant else DEFAULT_QUANTS[engine]
            best: FitRow | None = None
            for qname in names:
                q = quants.get(qname)
                if q is None or (q.engines and engine not in q.engines):
                    continue
                if q.requires_fp8 and not all(d.fp8 for d in devices if d.kind == "gpu"):
                    continue
                try:
                    d = Deployment.build(
                        model, q, devices, engine, tp=len(devices) if engine == "vllm" else 1, context=ctx
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
                )
                if best is None or _key(row) < _key(best):
                    best = row
            if best is not None:
                rows.append(best)
    rows.sort(key=lambda r: (r.model, *_key(r)))
    return rows


def _key(r: FitRow) -> tuple[int, float, float]:
    # the best verdict first; among equal verdicts the most precise format (quality), then speed
    return VERDICT_RANK[r.verdict], -r.bits_per_weight, -r.decode_tokens_per_s
