"""Token counts of one request (the server's usage when it sent one, see `RequestRecord`)."""

from __future__ import annotations

from waveidp.bench.metrics.metric import RequestMetric
from waveidp.bench.records import RequestRecord


def _output(r: RequestRecord) -> float:
    return float(r.output_tokens)


def _input(r: RequestRecord) -> float | None:
    return None if r.input_tokens is None else float(r.input_tokens)


OUTPUT_TOKENS = RequestMetric("output_tokens", "tokens", "output tokens", "output tokens", value=_output)
INPUT_TOKENS = RequestMetric("input_tokens", "tokens", "input tokens", "prompt tokens", value=_input)
