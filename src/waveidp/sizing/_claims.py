"""`wave claims`: hold claimed figures against physics and the prediction.

For each claim the physical bound is the same roofline at 100% of peak bandwidth and compute with
no per-step overhead (nothing runs faster); the prediction uses the calibrated efficiencies.
A claim beyond the bound is `impossible`; beyond the prediction by more than the optimistic factor
(engines.yaml `claims`) it is `optimistic`; otherwise `plausible`.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from waveidp.errors import ConfigError, InputError, WaveError
from waveidp.sizing._data import read_yaml, rules
from waveidp.sizing._deployment import Deployment
from waveidp.sizing._efficiency import Efficiency
from waveidp.sizing._estimate import estimate
from waveidp.sizing._request import SizingRequest
from waveidp.sizing._roofline import PerfModel, peak_flops

Metric = Literal["decode_tokens_per_s", "throughput_tokens_per_s", "memory_gb", "max_concurrency", "ttft_ms"]
ClaimVerdict = Literal["plausible", "optimistic", "impossible"]
_PEAK = Efficiency(decode_bandwidth=1.0, prefill_compute=1.0, step_overhead_s=0.0, source="physical bound")
_RANGE = re.compile(r"^\s*([0-9.]+)\s*(?:-|–|to|→)\s*([0-9.]+)\s*$")


class Claim(BaseModel):
    """One claimed figure. `device` is a hardware id or a list (GPU + CPU for a hybrid split)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    device: list[str]
    model: str
    quant: str | None = None
    engine: str | None = None
    metric: Metric
    value: tuple[float, float] = Field(description="claimed figure; a range 'a-b' keeps both ends")
    concurrency: int = Field(default=1, ge=1, le=100_000)
    context: int | None = Field(default=None, ge=1, le=10_000_000)
    prompt_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    output_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    threads: int | None = Field(default=None, ge=1, le=4096)
    source: str = ""
    quote: str = ""
    note: str = ""

    @field_validator("device", mode="before")
    @classmethod
    def _devices(cls, v: object) -> object:
        if isinstance(v, str):
            return [s.strip() for s in v.split("+") if s.strip()]
        return v

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, v: object) -> object:
        if isinstance(v, int | float):
            return (float(v), float(v))
        if isinstance(v, str):
            m = _RANGE.match(v)
            if m:
                return (float(m.group(1)), float(m.group(2)))
            try:
                return (float(v), float(v))
            except ValueError:
                raise ValueError(f"'{v}' is not a number or a range like '65-95'") from None
        if isinstance(v, list | tuple) and len(v) == 2:
            return (float(v[0]), float(v[1]))
        return v


class ClaimCheck(BaseModel):
    claim: Claim
    verdict: ClaimVerdict
    bound: float | None
    predicted: float | None
    summary: str
    bound_text: str
    predicted_text: str
    arithmetic: str


def load_claims(path: Path) -> list[Claim]:
    """Claims from YAML (a list, or `claims:` holding one) or CSV with a header row."""
    if not path.exists():
        raise InputError(f"claims file {path} does not exist")
    rows: list[tuple[str, object]]
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(path.read_text()))
        rows = [
            (f"{path}:{i + 2}", {k: v for k, v in r.items() if v not in (None, "")})
            for i, r in enumerate(reader)
        ]
    else:
        raw = read_yaml(path)
        items = raw.get("claims") if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise ConfigError("expected a list of claims (or 'claims:' holding one)", where=str(path))
        rows = [(f"{path}: claims[{i}]", item) for i, item in enumerate(items)]
    claims = []
    for where, row in rows:
        try:
            claims.append(Claim.model_validate(row))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(map(str, err["loc"])) or "row"
            raise ConfigError(err["msg"], where=f"{where}.{field}") from exc
    return claims


def check_claims(claims: list[Claim]) -> list[ClaimCheck]:
    return [check_claim(c) for c in claims]


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}" if abs(x) >= 10 else f"{x:,.2f}"


def check_claim(c: Claim) -> ClaimCheck:
    cr = rules().claims
    prompt = c.prompt_tokens or cr.default_prompt_tokens
    output = c.output_tokens or cr.default_output_tokens
    context = c.context or max(4096, prompt + output)
    lo, hi = c.value
    claimed = _fmt(lo) if lo == hi else f"{_fmt(lo)}-{_fmt(hi)}"
    summary = f"{c.model} {c.quant or ''} {c.engine or ''} on {'+'.join(c.device)}: {c.metric} = {claimed}"
    if c.concurrency > 1:
        summary += f" at concurrency {c.concurrency}"
    kw: dict[str, Any] = {"context": context}
    if c.threads:
        kw["threads"] = c.threads
    try:
        d = Deployment.build(c.model, c.quant, c.device, c.engine, **kw)
        req = SizingRequest(
            deployment=d, prompt_tokens=prompt, output_tokens=output, concurrency=c.concurrency
        )
        r = estimate(req)
    except WaveError as exc:
        raise InputError(f"claim {c.id or summary}: {exc}") from exc
    d_used = (
        d.model_copy(update={"parallel": max(d.parallel, c.concurrency)}) if d.engine == "llamacpp" else d
    )
    peak = PerfModel(d_used, _PEAK, every_device=True, physical_bound=True)
    pred = PerfModel(d_used)
    ctx = prompt + output // 2
    f = cr.optimistic_factor
    fits_note = "" if r.verdict != "impossible" else f" The configuration does not fit: {r.reasons[0]}."

    if c.metric in ("decode_tokens_per_s", "throughput_tokens_per_s"):
        batch = c.concurrency
        stages = peak.decode_stages(batch, ctx)
        parts = " + ".join(
            f"{b / 1e9:.2f} GB / {bw / 1e9:,.0f} GB/s ({p.device.label})" for p, b, bw in stages
        )
        step = peak.decode_step_seconds(batch, ctx)
        per_stream_bound = 1.0 / step
        predicted_c = r.performance.concurrency  # the clients that run at once
        point = next((p for p in r.curve if p.concurrency == predicted_c), None)
        if c.metric == "decode_tokens_per_s":
            bound = per_stream_bound
            predicted = 1000.0 / point.itl_ms if point else 1.0 / pred.decode_step_seconds(batch, ctx)
            unit = "tok/s per stream"
        else:
            bound = batch * per_stream_bound
            predicted = point.output_tokens_per_s if point else batch / pred.decode_step_seconds(batch, ctx)
            unit = "tok/s aggregate"
        arithmetic = (
            f"one decode step for {batch} stream(s) at {ctx} tokens moves {parts} "
            f"= {step * 1000:.2f} ms at 100% of peak -> at most {_fmt(bound)} {unit}; "
            f"predicted {_fmt(predicted)} ({pred.eff.decode_bandwidth:.0%} of bandwidth)."
        )
        verdict = _higher_is_better(lo, bound, predicted, f)
    elif c.metric == "ttft_ms":
        bound = peak.prefill_seconds(prompt) * 1000
        predicted = r.performance.ttft_ms
        flops = 2 * d.model.params_per_token * prompt
        primary = (d.accelerators or d.devices)[0]
        arithmetic = (
            f"prefill of {prompt} tokens = 2 x {d.model.params_per_token / 1e9:.2f} B params x {prompt} "
            f"= {flops / 1e12:.2f} TFLOP at {peak_flops(primary, d.quant.compute_dtype) / 1e12:,.0f} "
            f"TFLOP/s peak ({d.quant.compute_dtype}) -> at least {_fmt(bound)} ms; predicted "
            f"{_fmt(predicted)} ms."
        )
        verdict = _lower_is_better(hi, bound, predicted, f)
    elif c.metric == "memory_gb":
        weights = r.memory.weights_bytes
        kv_one = min(context, prompt + output) * r.memory.kv_bytes_per_token
        bound = (weights + kv_one) / 1e9
        predicted = r.memory.total_bytes / 1e9
        arithmetic = (
            f"weights {weights / 1e9:.2f} GB + KV of one {prompt + output}-token request "
            f"{kv_one / 1e9:.2f} GB = at least {bound:.2f} GB; predicted {predicted:.2f} GB "
            f"({r.engine} rules, context {context})."
        )
        verdict = _lower_is_better(hi, bound, predicted, f)
    else:  # max_concurrency
        total = sum(h.memory_bytes for h in d.devices)
        per_seq = context * r.memory.kv_bytes_per_token
        bound = max(0.0, (total - r.memory.weights_bytes) / per_seq)
        predicted = float(r.max_concurrency)
        arithmetic = (
            f"({total / 1e9:.1f} GB of memory - {r.memory.weights_bytes / 1e9:.2f} GB of weights) / "
            f"KV of one {context}-token sequence {per_seq / 1e9:.3f} GB = at most {_fmt(bound)}; "
            f"predicted {_fmt(predicted)} with {r.engine}'s rules."
        )
        verdict = _higher_is_better(lo, bound, predicted, f)
    if r.verdict == "impossible" and c.metric != "memory_gb":
        verdict = "impossible"
    return ClaimCheck(
        claim=c,
        verdict=verdict,
        bound=round(bound, 3),
        predicted=round(predicted, 3),
        summary=summary,
        bound_text=_fmt(bound),
        predicted_text=_fmt(predicted),
        arithmetic=arithmetic + fits_note,
    )


def _higher_is_better(claimed_low: float, bound: float, predicted: float, factor: float) -> ClaimVerdict:
    if claimed_low > bound:
        return "impossible"
    if claimed_low > predicted * factor:
        return "optimistic"
    return "plausible"


def _lower_is_better(claimed_high: float, bound: float, predicted: float, factor: float) -> ClaimVerdict:
    if claimed_high < bound:
        return "impossible"
    if claimed_high < predicted / factor:
        return "optimistic"
    return "plausible"
