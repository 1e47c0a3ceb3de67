"""A load point's records -> the summary every output shows (JSON, CSV, console, HTML)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from waveidp.bench.metrics import (
    CLIENT_LAG,
    E2E,
    INPUT_TOKENS,
    ITL,
    OUTPUT_TOKENS,
    TTFT,
    Slo,
    distribution,
    goodput_per_s,
    output_tokens_per_s,
    requests_per_s,
    window_s,
)
from waveidp.bench.records import RequestRecord
from waveidp.bench.report import LoadPointSummary, RequestRow


def _source(values: set[str]) -> str | None:
    if not values:
        return None
    return values.pop() if len(values) == 1 else "mixed"


def summarize(
    records: Sequence[RequestRecord], slo: Slo, loop_delay_s: Iterable[float] = ()
) -> LoadPointSummary:
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    failed = [r for r in measured if not r.ok and r.error != "cancelled"]
    errors: Counter[str] = Counter(r.error or "incomplete" for r in failed)
    examples: dict[str, str] = {}
    for r in failed:
        examples.setdefault(r.error or "incomplete", r.error_detail or "")
    return LoadPointSummary(
        ttft_ms=TTFT.distribution(ok),
        itl_ms=ITL.distribution(ok),
        e2e_ms=E2E.distribution(ok),
        client_lag_ms=CLIENT_LAG.distribution(measured),
        output_tokens=OUTPUT_TOKENS.distribution(ok),
        input_tokens=INPUT_TOKENS.distribution(ok),
        output_tokens_per_s=output_tokens_per_s(records),  # warm-up tokens inside the window count
        requests_per_s=requests_per_s(measured),
        goodput_per_s=goodput_per_s(measured, slo),
        slo=slo.as_dict(),
        duration_s=window_s(measured),
        sent=len(measured),
        completed=len(ok),
        errors=sum(errors.values()),
        errors_by_kind=dict(errors),
        error_examples=examples,
        cancelled=sum(1 for r in measured if r.error == "cancelled"),
        resent_on_stale_connection=sum(1 for r in measured if r.attempts > 1),
        output_token_source=_source({r.output_token_source for r in ok}),
        input_token_source=_source({r.input_token_source for r in ok if r.input_token_source}),
        loop_delay_ms=distribution(loop_delay_s, 1000),
    )


def request_row(r: RequestRecord, t0: float, *, chunks: bool = True) -> RequestRow:
    """One request's timings for results.json, seconds relative to the load point's start."""

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 6)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v, 4)

    row = RequestRow(
        scheduled_s=round(r.scheduled - t0, 6),
        sent_s=rel(r.sent),
        first_token_s=rel(r.content_times[0]) if r.content_times else None,
        done_s=rel(r.done),
        ttft_ms=ms(TTFT.of(r)),
        itl_ms=ms(ITL.of(r)),
        e2e_ms=ms(E2E.of(r)),
        client_lag_ms=ms(CLIENT_LAG.of(r)),
        input_tokens=r.input_tokens,
        input_token_source=r.input_token_source,
        output_tokens=r.output_tokens,
        output_token_source=r.output_token_source,
        content_chunks=len(r.content_times),
        status=r.status,
        warmup=r.warmup,
        attempts=r.attempts,
        error=r.error,
        error_detail=r.error_detail,
    )
    if chunks:
        row.chunk_ms = [round((t - r.scheduled) * 1000, 3) for t in r.content_times]
    return row
