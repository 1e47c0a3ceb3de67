"""The emulated engine's `/metrics`, with the metric names the real engine uses.

vLLM (v1 names, model_name label) or llama.cpp server (`llamacpp:` prefix, no labels; llama.cpp
has no counter of aborted requests, so that flavour shows them only in `/emulator/trace`). Gauges
are read from the scheduler at scrape time; latency histograms are observed as requests finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from waveidp.bench.emulator.scheduler import BatchScheduler, Sequence

EmulatedEngine = Literal["vllm", "llamacpp"]

_LATENCY_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)


class _VllmGauges(Collector):
    def __init__(self, sched: BatchScheduler, model: str) -> None:
        self.sched, self.model = sched, model

    def collect(self) -> Iterator[Metric]:
        s, st, m = self.sched, self.sched.stats, [self.model]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=["model_name"])
            g.add_metric(m, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=["model_name"])
            c.add_metric(m, value)
            return c

        yield gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", len(s.running)
        )
        yield gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            len(s.waiting),
        )
        yield gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", s.kv_usage)
        yield gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage (pre-v1 name).", s.kv_usage)
        yield counter("vllm:prompt_tokens", "Number of prefill tokens processed.", st.prompt_tokens_total)
        yield counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", st.generation_tokens_total
        )
        # vLLM counts finished requests by reason; a client that went away is `abort`
        done = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=["model_name", "finished_reason"],
        )
        for reason, value in (
            ("stop", st.stopped),
            ("length", st.finished - st.stopped),
            ("abort", st.aborted),
        ):
            done.add_metric([self.model, reason], value)
        yield done


class _LlamacppGauges(Collector):
    def __init__(self, sched: BatchScheduler) -> None:
        self.sched = sched

    def collect(self) -> Iterator[Metric]:
        s, st = self.sched, self.sched.stats
        counters = (
            ("llamacpp:prompt_tokens", "Number of prompt tokens processed.", st.prompt_tokens_total),
            ("llamacpp:prompt_seconds", "Prompt process time", st.prefill_s_total),
            (
                "llamacpp:tokens_predicted",
                "Number of generation tokens processed.",
                st.generation_tokens_total,
            ),
            ("llamacpp:tokens_predicted_seconds", "Predict process time", st.decode_s_total),
            ("llamacpp:n_decode", "Total number of llama_decode() calls", st.steps),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)
        gauges = (
            (
                "llamacpp:n_busy_slots_per_decode",
                "Average number of busy slots per llama_decode() call",
                st.busy_slots_total / st.steps if st.steps else 0.0,
            ),
            (
                "llamacpp:prompt_tokens_seconds",
                "Average prompt throughput in tokens/s.",
                st.prompt_tokens_total / st.prefill_s_total if st.prefill_s_total else 0.0,
            ),
            (
                "llamacpp:predicted_tokens_seconds",
                "Average generation throughput in tokens/s.",
                st.generation_tokens_total / st.decode_s_total if st.decode_s_total else 0.0,
            ),
            ("llamacpp:kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", s.kv_usage),
            ("llamacpp:kv_cache_tokens", "KV-cache tokens.", s.kv_used),
            ("llamacpp:requests_processing", "Number of requests processing.", len(s.running)),
            (
                "llamacpp:requests_deferred",
                "Number of requests deferred.",
                len(s.waiting),
            ),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)


class EngineMetrics:
    """Registry plus the per-request observations (vLLM histograms)."""

    def __init__(self, engine: EmulatedEngine, sched: BatchScheduler, model: str) -> None:
        self.engine = engine
        self.registry = CollectorRegistry(auto_describe=False)
        self._hist: dict[str, Histogram] = {}
        if engine == "vllm":
            self.registry.register(_VllmGauges(sched, model))
            for key, name, doc in (
                ("ttft", "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds."),
                ("itl", "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds."),
                ("e2e", "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds."),
                ("queue", "vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase."),
            ):
                self._hist[key] = Histogram(
                    name, doc, ["model_name"], registry=self.registry, buckets=_LATENCY_BUCKETS
                ).labels(model)
        else:
            self.registry.register(_LlamacppGauges(sched))

    def observe(self, seq: Sequence) -> None:
        if not self._hist or seq.first_token is None or seq.last_token is None:
            return
        self._hist["ttft"].observe(seq.first_token - seq.received)
        self._hist["e2e"].observe(seq.last_token - seq.received)
        if seq.admitted is not None:
            self._hist["queue"].observe(seq.admitted - seq.received)
        if seq.generated > 1:
            self._hist["itl"].observe((seq.last_token - seq.first_token) / (seq.generated - 1))

    def render(self) -> bytes:
        return generate_latest(self.registry)
