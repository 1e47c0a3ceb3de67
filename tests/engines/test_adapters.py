"""Engine adapters: load read from each engine's metrics, checked against the real llama-server."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import pytest

from support import running
from waveidp.engines import adapter, detect
from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.errors import NotFoundError
from waveidp.loopback import free_port, wait_http

# As vLLM 0.6-0.9 exposes them (V0 engine name for the KV gauge), two models on one server.
VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 3.0
vllm:num_requests_running{model_name="b"} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="a"} 5.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="a"} 0.42
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="a"} 1234.0
"""


def test_vllm_load_sums_label_sets() -> None:
    load = adapter("vllm").parse_metrics(VLLM_METRICS)
    assert (load.running, load.waiting, load.kv_usage) == (4.0, 5.0, 0.42)
    assert load.queued == 9.0


def test_vllm_v1_kv_gauge_name_is_read() -> None:
    text = '# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name="a"} 0.9\n'
    assert adapter("vllm").parse_metrics(text).kv_usage == 0.9


def test_engines_without_metrics_report_nothing() -> None:
    for kind in ("ollama", "openai"):
        a = adapter(kind)
        assert a.metrics_url("http://h:1") is None
        assert a.parse_metrics(VLLM_METRICS).running is None


def test_health_paths_differ_by_engine() -> None:
    assert adapter("nim").health_url("http://h:8000") == "http://h:8000/v1/health/ready"
    assert adapter("triton").health_url("http://h:9000") == "http://h:9000/health/ready"
    assert adapter("ollama").health_url("http://h:11434") == "http://h:11434/api/version"
    assert adapter("embedded") is adapter("llamacpp")


def test_unknown_kind_suggests_close_names() -> None:
    with pytest.raises(NotFoundError, match="did you mean vllm"):
        adapter("vlm")


def test_detect_by_metric_names() -> None:
    assert detect(VLLM_METRICS).kind == "vllm"
    assert detect("# nothing here\n").kind == "openai"


@pytest.mark.engine
def test_real_llama_server_metrics_launch_and_embeddings(
    llama_server_bin: Path, smollm2_path: Path, tmp_path: Path
) -> None:
    """The launch command works as built, one process serves chat and embeddings, and the adapter
    reads its load while requests run."""
    spec = LlamaServerSpec(
        binary=llama_server_bin, model=smollm2_path, port=free_port(), alias="smol", parallel=2
    )
    with running(spec.command(), log=tmp_path / "llama.log") as proc:
        wait_http(spec.url + "/health", proc=proc, timeout=60)
        a = adapter("llamacpp")
        assert detect(httpx.get(spec.url + "/metrics").text) is a
        idle = a.parse_metrics(httpx.get(spec.url + "/metrics").text)
        assert (idle.running, idle.waiting) == (0.0, 0.0)

        def chat() -> int:
            body = {
                "model": "smol",
                "messages": [{"role": "user", "content": "Tell a story"}],
                "max_tokens": 64,
            }
            return httpx.post(spec.url + "/v1/chat/completions", json=body, timeout=60).status_code

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(chat) for _ in range(3)]
            seen = 0.0
            while not all(f.done() for f in futures):
                load = a.parse_metrics(httpx.get(spec.url + "/metrics").text)
                seen = max(seen, load.queued)
                if seen >= 3:
                    break
            assert [f.result() for f in futures] == [200, 200, 200]
        assert seen >= 2  # 2 slots processing (+1 deferred when it catches all three)
        emb = httpx.post(spec.url + "/v1/embeddings", json={"model": "smol", "input": "hi"}).json()
        assert len(emb["data"][0]["embedding"]) == 576
