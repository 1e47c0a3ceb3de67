"""Every catalog model on every catalog device with both main engines: no crash, sane numbers."""

from __future__ import annotations

import itertools

import pytest

from waveidp import catalog
from waveidp.errors import WaveError
from waveidp.sizing import Deployment, SizingRequest, estimate

MODELS = sorted(catalog.all_models())
HARDWARE = sorted(catalog.all_hardware())


@pytest.mark.parametrize("model_id", MODELS)
def test_model_on_every_device(model_id: str) -> None:
    model = catalog.model(model_id)
    for hw_id in HARDWARE:
        hw = catalog.hardware(hw_id)
        for engine, quant in (("llamacpp", "q4_k_m"), ("vllm", "bf16")):
            if engine == "vllm" and hw.kind == "cpu":
                continue
            try:
                d = Deployment.build(model, quant, [hw_id], engine, context=min(4096, model.max_context))
            except WaveError:
                continue
            r = estimate(SizingRequest(deployment=d, prompt_tokens=256, output_tokens=128, concurrency=2))
            where = f"{model_id} {quant} on {hw_id} with {engine}"
            assert r.verdict in ("fits", "tight", "offload", "impossible"), where
            assert r.memory.weights_bytes > 0 and r.memory.kv_bytes_per_token > 0, where
            assert r.memory.total_bytes >= r.memory.weights_bytes * 0.5, where
            assert r.performance.itl_ms > 0 and r.performance.ttft_ms > 0, where
            if r.verdict != "impossible":
                assert r.max_concurrency >= 1, where
                points = [p.output_tokens_per_s for p in r.curve]
                # saturated, llama.cpp's simulated rate may dip by a percent (generating slots scatter
                # over more ubatches), never more
                assert all(b >= a * 0.97 for a, b in itertools.pairwise(points)), where
