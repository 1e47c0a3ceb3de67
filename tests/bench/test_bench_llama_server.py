"""`wave bench` against the real embedded engine: llama-server serving SmolLM2-135M on one thread."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import wave

from support import running
from waveidp.bench.report import BenchReport
from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.loopback import free_port, wait_http

pytestmark = pytest.mark.engine


def test_bench_against_llama_server_end_to_end(
    llama_server_bin: Path, smollm2_path: Path, tmp_path: Path
) -> None:
    spec = LlamaServerSpec(
        binary=llama_server_bin,
        model=smollm2_path,
        port=free_port(),
        alias="smollm2",
        threads=1,
        parallel=2,
        context=2048,
        embeddings=False,
    )
    with running(spec.command(), log=tmp_path / "llama-server.log") as proc:
        url = spec.url
        wait_http(url + "/health", proc=proc, timeout=60)
        out = tmp_path / "bench"
        r = wave(
            "bench",
            "--url",
            url,
            "--model",
            "smollm2",
            "--dataset",
            "chat",
            "-c",
            "1,2",
            "-n",
            "4",
            "--output-tokens",
            "12",
            "--out",
            str(out),
            "--predict",
            "--model-id",
            "smollm2-135m",
            "--quant",
            "q4_1",
            "--device",
            "cpu-generic",
            "--engine",
            "llamacpp",
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    report = BenchReport.load(out)
    for run in report.runs:
        s = run.summary
        assert s.completed == 4 and s.errors == 0
        assert s.output_token_source == "usage" and s.input_token_source == "usage"
        assert s.output_tokens.mean == 12  # ignore_eos honoured by llama.cpp
        assert 0 < (s.ttft_ms.p50 or 0) < (s.e2e_ms.p50 or 0)
        assert (s.itl_ms.p50 or 0) > 0 and s.output_tokens_per_s > 0
    assert report.deployment and report.deployment.model == "smollm2-135m"
    assert report.predictions and len(report.predictions) == 2
    assert all(p.itl_ms.error_pct is not None for p in report.predictions)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "Sizing prediction vs measurement" in html
