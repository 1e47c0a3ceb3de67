"""Metric math on hand-built timelines (times in seconds, as the client records them)."""

from __future__ import annotations

import numpy as np
import pytest

from waveidp.bench.metrics import (
    Slo,
    client_lag_s,
    distribution,
    e2e_s,
    goodput_per_s,
    itl_s,
    meets_slo,
    output_tokens_per_s,
    requests_per_s,
    ttft_s,
    window_s,
)
from waveidp.bench.records import RequestRecord
from waveidp.bench.summary import summarize
from waveidp.errors import InputError


def rec(
    scheduled: float, sent: float, chunks: list[float], done: float, usage: int | None = None, **kw: object
) -> RequestRecord:
    return RequestRecord(
        scheduled=scheduled, sent=sent, content_times=chunks, done=done, output_tokens_usage=usage, **kw
    )  # type: ignore[arg-type]


def test_ttft_itl_e2e_follow_the_spec_definitions() -> None:
    r = rec(10.0, 10.002, [10.1, 10.12, 10.14, 10.16], 10.165, usage=4)
    assert ttft_s(r) == pytest.approx(0.1)  # from the scheduled time, not the actual send
    assert e2e_s(r) == pytest.approx(0.165)
    assert itl_s(r) == pytest.approx((0.165 - 0.1) / 3)
    assert client_lag_s(r) == pytest.approx(0.002)


def test_usage_count_wins_over_chunk_count_and_says_so() -> None:
    r = rec(0, 0, [0.1, 0.2], 0.3, usage=5)  # server packed 5 tokens into 2 chunks
    assert r.output_tokens == 5 and r.output_token_source == "usage"
    assert itl_s(r) == pytest.approx((0.3 - 0.1) / 4)
    r2 = rec(0, 0, [0.1, 0.2], 0.3)
    assert r2.output_tokens == 2 and r2.output_token_source == "chunks"


def test_one_token_output_has_ttft_but_no_itl_and_meets_an_itl_slo() -> None:
    r = rec(0, 0, [0.05], 0.06, usage=1)
    assert ttft_s(r) == pytest.approx(0.05)
    assert itl_s(r) is None
    assert meets_slo(r, Slo(ttft_ms=100, itl_ms=1))
    assert not meets_slo(r, Slo(ttft_ms=10))


def test_no_content_chunk_means_no_latencies() -> None:
    # only empty chunks arrived (e.g. the role chunk), then the stream ended: not a completed request
    r = rec(0, 0, [], 0.5, error="empty")
    assert not r.ok
    assert ttft_s(r) is None and itl_s(r) is None and e2e_s(r) is None


def test_errors_and_timeouts_are_counted_by_kind_and_excluded_from_latencies() -> None:
    good = [rec(i, i, [i + 0.1, i + 0.2], i + 0.2, usage=2) for i in range(3)]
    bad = [
        rec(0.5, 0.5, [], 0.51, error="http", error_detail="HTTP 500: boom", status=500),
        rec(0.6, 0.6, [0.7], 30.6, error="timeout", error_detail="no complete response within 30s"),
        rec(0.7, 0.7, [], 0.7, error="connect", error_detail="refused"),
        rec(0.8, 0.8, [], 0.8, error="cancelled"),
    ]
    s = summarize(good + bad, Slo())
    assert s.completed == 3
    assert s.errors == 3  # cancelled (interrupted in flight) is not a server error
    assert s.cancelled == 1
    assert s.errors_by_kind == {"http": 1, "timeout": 1, "connect": 1}
    assert s.error_examples["http"] == "HTTP 500: boom"
    assert s.ttft_ms.count == 3 and s.ttft_ms.mean == pytest.approx(100)
    # the timed-out request's late byte does not stretch the throughput window
    assert window_s(good + bad) == pytest.approx(2.2)


def test_throughputs_use_first_scheduled_to_last_done() -> None:
    rs = [rec(0.0, 0.0, [0.5, 1.0], 1.0, usage=10), rec(1.0, 1.0, [1.5, 2.0], 4.0, usage=30)]
    assert window_s(rs) == pytest.approx(4.0)
    assert output_tokens_per_s(rs) == pytest.approx(40 / 4.0)
    assert requests_per_s(rs) == pytest.approx(2 / 4.0)


def test_warmup_requests_are_excluded_everywhere() -> None:
    warm = rec(-10, -10, [-9.0], -8.0, usage=100, warmup=True)
    rs = [warm, rec(0.0, 0.0, [0.5], 1.0, usage=10)]
    assert window_s(rs) == pytest.approx(1.0)
    assert output_tokens_per_s(rs) == pytest.approx(10)
    assert summarize(rs, Slo()).completed == 1


def test_warmup_tokens_inside_the_window_count_toward_output_throughput() -> None:
    """--point-warmup: the excluded first round still decodes during the window; its tokens that
    arrive inside it are the engine's throughput too (latencies stay measured-only)."""
    # warm-up request: 4 tokens, 2 of them before the window opens at 0.0, 2 inside it
    warm = rec(-2.0, -2.0, [-1.5, -0.5, 0.5, 1.5], 1.5, usage=8, warmup=True)
    rs = [warm, rec(0.0, 0.0, [1.0, 2.0], 2.0, usage=10)]
    assert window_s(rs) == pytest.approx(2.0)
    assert output_tokens_per_s(rs) == pytest.approx((10 + 8 * 2 / 4) / 2.0)
    summary = summarize(rs, Slo())
    assert summary.output_tokens_per_s == pytest.approx(7.0)
    assert summary.completed == 1 and summary.ttft_ms.count == 1


def test_goodput_counts_requests_meeting_every_slo() -> None:
    rs = [
        rec(0, 0, [0.1, 0.11, 0.12], 0.12, usage=3),  # ttft 100, itl 10
        rec(0, 0, [0.3, 0.31, 0.32], 0.32, usage=3),  # ttft 300: misses ttft
        rec(0, 0, [0.1, 0.2, 0.3], 0.3, usage=3),  # itl 100: misses itl
        rec(0, 0, [0.1, 0.11, 0.12], 1.0, usage=3),  # itl 450: misses itl (E2E-based)
    ]
    slo = Slo(ttft_ms=200, itl_ms=20)
    assert [meets_slo(r, slo) for r in rs] == [True, False, False, False]
    assert goodput_per_s(rs, slo) == pytest.approx(1 / 1.0)
    assert goodput_per_s(rs, Slo()) == pytest.approx(4 / 1.0)


def test_slo_parsing_errors_name_the_option() -> None:
    assert Slo.parse("ttft_ms=500, itl_ms=50") == Slo(ttft_ms=500, itl_ms=50)
    with pytest.raises(InputError, match="--slo"):
        Slo.parse("tfft_ms=5")
    with pytest.raises(InputError, match="not a number"):
        Slo.parse("ttft_ms=fast")


def test_percentiles_are_numpy_linear_interpolation() -> None:
    values = [float(v) for v in range(1, 101)]
    d = distribution(values)
    assert d.count == 100 and d.mean == pytest.approx(50.5)
    assert d.p50 == pytest.approx(np.percentile(values, 50))
    assert d.p99 == pytest.approx(99.01)
    assert distribution([None, None]).p50 is None


def test_poisson_arrivals_are_seeded_and_have_the_asked_rate() -> None:
    from waveidp.bench.profiles.poisson import arrival_offsets

    a = arrival_offsets(50.0, 5000, 1000.0, seed=3)
    assert a == arrival_offsets(50.0, 5000, 1000.0, seed=3) and a != arrival_offsets(
        50.0, 5000, 1000.0, seed=4
    )
    assert a[0] == 0 and len(a) == 5000
    assert (len(a) - 1) / a[-1] == pytest.approx(50.0, rel=0.05)
    assert len(arrival_offsets(50.0, 5000, 2.0, seed=3)) < 200  # the duration bounds the count too
