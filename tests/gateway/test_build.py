"""Backends from a fleet file: URLs, keys, and the sizing prediction the router starts from."""

from __future__ import annotations

import pytest

from waveidp.errors import ConfigError
from waveidp.fleet import loads
from waveidp.gateway.build import api_root, backends_from_fleet
from waveidp.gateway.request_info import parse_request
from waveidp.gateway.routing.forecast import forecast
from waveidp.gateway.routing.predicted_latency import estimate

FLEET = """
version: 1
nodes:
  - name: desktop
    devices: [{id: gpu0, hardware: rtx-5070-ti}, {id: cpu, hardware: ryzen-9-9900x}]
    backends:
      - name: gpu-llama
        engine: llamacpp
        url: http://10.0.0.2:8080/v1/
        devices: [gpu0]
        max_concurrency: 4
        models: [{name: llama, model: llama-3.1-8b, quant: q4_k_m}]
      - name: cpu-llama
        engine: llamacpp
        url: http://10.0.0.2:8081
        devices: [cpu]
        models: [{name: llama, model: llama-3.1-8b, quant: q4_k_m}]
      - name: mystery
        engine: openai
        url: http://10.0.0.3:9000
        api_key_env: WAVE_TEST_BACKEND_KEY
        models: [llama]
"""


def test_fleet_backends_carry_sizing_predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVE_TEST_BACKEND_KEY", "s3cret")
    gpu, cpu, mystery = backends_from_fleet(loads(FLEET, "wave.yaml"))
    assert (gpu.root, gpu.engine, gpu.max_concurrency, gpu.models) == (
        "http://10.0.0.2:8080",
        "llamacpp",
        4,
        {"llama"},
    )
    assert mystery.api_key == "s3cret" and mystery.predictions == {}  # no devices: observations only
    assert gpu.predictions["llama"].provenance == "default"  # catalog factors: a weak prior
    info = parse_request(
        "chat", b'{"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}'
    )
    fast, slow = estimate(gpu, info), estimate(cpu, info)
    assert slow > 3 * fast  # 896 GB/s GDDR7 vs dual-channel DDR5
    assert not forecast(mystery, info).known  # nothing but a placeholder until it answers


def test_missing_backend_key_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAVE_TEST_BACKEND_KEY", raising=False)
    with pytest.raises(ConfigError, match="WAVE_TEST_BACKEND_KEY is not set"):
        backends_from_fleet(loads(FLEET, "wave.yaml"))


@pytest.mark.parametrize("url", ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"])
def test_api_root(url: str) -> None:
    assert api_root(url) == "http://h:1"


def test_a_device_calibrated_in_the_fleet_file_gives_the_router_a_trusted_prior(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WAVE_TEST_BACKEND_KEY", "s3cret")
    calibrated = FLEET.replace(
        "{id: cpu, hardware: ryzen-9-9900x}",
        "{id: cpu, hardware: ryzen-9-9900x, calibration: {llamacpp: {factors: {decode_bandwidth: 0.5},"
        " measured_at: '2026-12-06T00:00:00Z', method: llama-bench}}}",
    )
    gpu, cpu, _ = backends_from_fleet(loads(calibrated, "wave.yaml"))
    assert cpu.predictions["llama"].provenance == "calibrated"  # measured on its node: a strong prior
    assert gpu.predictions["llama"].provenance == "default"  # its GPU was not calibrated
