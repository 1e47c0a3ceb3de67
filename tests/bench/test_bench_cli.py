"""`wave bench` end to end against `wave emulate`, plus every bad-input path a user meets."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from bench_support import WAVE, wave

from waveidp.bench.report import BenchReport
from waveidp.loopback import free_port


def test_bench_writes_results_csv_plots_and_report(emulator: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = wave(
        "bench",
        "--url",
        emulator,
        "--model",
        "emu-model",
        "-c",
        "1,4",
        "-r",
        "20",
        "-n",
        "12",
        "--input-tokens",
        "32",
        "--output-tokens",
        "8",
        "--slo",
        "ttft_ms=1000,itl_ms=1000",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "wave-bench/1" and doc["command"].startswith("wave bench --url")
    assert [run.get("concurrency", run.get("rate")) for run in doc["runs"]] == [1, 4, 20.0]
    for run in doc["runs"]:
        s = run["summary"]
        assert s["completed"] == 12 and s["errors"] == 0
        assert s["output_token_source"] == "usage" and s["output_tokens"]["mean"] == 8
        for key in ("ttft_ms", "itl_ms", "e2e_ms"):
            assert set(s[key]) >= {"mean", "p50", "p90", "p95", "p99"}
        assert s["goodput_per_s"] == pytest.approx(s["requests_per_s"])
        assert len(run["requests"]) == 12 and len(run["requests"][0]["chunk_ms"]) == 8
    c1 = doc["runs"][0]["summary"]
    # the emulator's exact timing (prefill 20 ms, step 10 ms) seen through HTTP and the client: the
    # trip adds a few ms on a busy machine and takes none away; a TTFT that missed the prefill or
    # counted it twice would be ~1 or ~40 ms
    assert 19 <= c1["ttft_ms"]["p50"] <= 28
    assert c1["itl_ms"]["p50"] == pytest.approx(10, rel=0.05)
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 36
    for png in ("throughput_latency.png", "ttft_distribution.png", "itl_distribution.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "c=4" in html

    cmp = wave("bench", "compare", str(out), str(out / "results.json"), "--json")
    assert cmp.returncode == 0, cmp.stderr
    rows = json.loads(cmp.stdout)
    assert {r["load"] for r in rows} == {"c=1", "c=4", "rate=20/s"}
    assert all(r["ratio"] == pytest.approx(1.0) for r in rows if r["ratio"] is not None)


def test_unreachable_url_is_one_clear_line() -> None:
    r = wave("bench", "--url", f"http://127.0.0.1:{free_port()}", "--model", "m", "-n", "2")
    assert r.returncode == 2
    assert "warm-up failed" in r.stderr and "cannot connect" in r.stderr
    assert "Traceback" not in r.stderr


def test_wrong_model_names_the_404_and_the_model(emulator: str) -> None:
    r = wave("bench", "--url", emulator, "--model", "no-such-model", "-n", "2")
    assert r.returncode == 2
    assert "HTTP 404" in r.stderr and "no-such-model" in r.stderr and "/v1/models" in r.stderr


@pytest.fixture
def fake_server() -> Iterator[tuple[str, dict[str, bytes | int]]]:
    """A server whose chat endpoint answers whatever the test puts in `reply` (status, body)."""
    reply: dict[str, bytes | int] = {"status": 500, "body": b'{"error": {"message": "boom"}}'}

    async def chat(_req: web.Request) -> web.StreamResponse:
        status = int(reply["status"])
        if status != 200:
            return web.Response(status=status, body=reply["body"], content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(_req)
        await resp.write(bytes(reply["body"]))  # type: ignore[arg-type]
        if reply.get("hang"):  # a server that stops sending mid-stream (until teardown)
            await release.wait()
        return resp

    release = asyncio.Event()
    port = free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", reply
    finally:
        loop.call_soon_threadsafe(release.set)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_server_errors_and_garbage_sse_are_named(fake_server: tuple[str, dict[str, bytes | int]]) -> None:
    url, reply = fake_server
    r = wave("bench", "--url", url, "--model", "m", "-n", "2")
    assert r.returncode == 2 and "HTTP 500: boom" in r.stderr

    reply.update(status=200, body=b'data: {"choices": [{"delta": {"content": "a"}}]}\n\nthis is not sse\n\n')
    r = wave("bench", "--url", url, "--model", "m", "-n", "2")
    assert r.returncode == 2 and "bad_sse" in r.stderr and "not SSE" in r.stderr

    reply.update(body=b"data: {oops\n\n")
    r = wave("bench", "--url", url, "--model", "m", "-n", "2")
    assert r.returncode == 2 and "not JSON" in r.stderr

    reply.update(body=b"data: [DONE]\n\n")
    r = wave("bench", "--url", url, "--model", "m", "-n", "2")
    assert r.returncode == 2 and "without any content token" in r.stderr


def test_without_usage_tokens_are_counted_from_chunks_and_labelled(
    fake_server: tuple[str, dict[str, bytes | int]], tmp_path: Path
) -> None:
    url, reply = fake_server
    chunk = b'data: {"choices": [{"delta": {"content": "x"}}]}\n\n'
    reply.update(status=200, body=b'data: {"choices": [{"delta": {"role": "assistant"}}]}\n\n' + chunk * 3
                 + b"data: [DONE]\n\n")  # fmt: skip
    r = wave("bench", "--url", url, "--model", "m", "-n", "3", "--out", str(tmp_path), "--no-plots")
    assert r.returncode == 0, r.stderr
    s = BenchReport.load(tmp_path).runs[0].summary
    assert s.completed == 3 and s.output_tokens.mean == 3
    assert s.output_token_source == "chunks" and s.input_token_source == "approx"


def test_a_stalled_stream_is_a_timeout(fake_server: tuple[str, dict[str, bytes | int]]) -> None:
    url, reply = fake_server
    reply.update(status=200, body=b'data: {"choices": [{"delta": {"content": "x"}}]}\n\n', hang=1)
    r = wave("bench", "--url", url, "--model", "m", "-n", "1", "--timeout", "1")
    assert r.returncode == 2 and "(timeout)" in r.stderr and "within 1s" in r.stderr


def test_duration_bounds_a_load_point(emulator: str, tmp_path: Path) -> None:
    r = wave("bench", "--url", emulator, "--model", "emu-model", "-c", "2", "-n", "10000", "--duration", "1",
             "--output-tokens", "4", "--out", str(tmp_path), "--no-plots")  # fmt: skip
    assert r.returncode == 0, r.stderr
    run = BenchReport.load(tmp_path).runs[0]
    assert 0 < run.summary.completed < 200  # ~60 ms per request, 2 at a time, for ~1 s
    assert max(q.scheduled_s for q in run.requests) < 1.0


def test_bad_options_are_one_line_errors() -> None:
    for args, needle in (
        (["--concurrency", "0"], "--concurrency"),
        (["--input-tokens", "x"], "--input-tokens"),
        (["--slo", "ttft=3"], "--slo"),
        (["--endpoint", "embed"], "--endpoint"),
    ):
        r = wave("bench", "--url", "http://127.0.0.1:9", "--model", "m", *args)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_ctrl_c_writes_partial_results(emulator: str, tmp_path: Path) -> None:
    out = tmp_path / "partial"
    proc = subprocess.Popen(
        [
            *WAVE,
            "bench",
            "--url",
            emulator,
            "--model",
            "emu-model",
            "-c",
            "2",
            "-n",
            "1000",
            "--input-tokens",
            "16",
            "--output-tokens",
            "20",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client() as client:  # poll the server until measured requests have finished
            for _ in range(600):
                text = client.get(emulator + "/metrics").text
                done = [
                    float(ln.rsplit(" ", 1)[1])
                    for ln in text.splitlines()
                    if ln.startswith("vllm:request_success_total") and 'finished_reason="abort"' not in ln
                ]
                if sum(done) >= 4:
                    break
                assert proc.poll() is None
                time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted: partial results written" in stderr
    report = BenchReport.load(out)
    assert report.partial is True and report.runs[0].interrupted is True
    assert report.runs[0].summary.completed >= 1
    assert (out / "report.html").exists()


def test_emulator_timing_follows_the_sizing_model(tmp_path: Path) -> None:
    from bench_support import start_emulator

    from waveidp.loopback import wait_http
    from waveidp.sizing import Deployment, PerfModel

    perf = PerfModel(Deployment.build("llama-3.1-8b", "q4_k_m", ["rtx-5070-ti"], "llamacpp", context=4096))
    args = ["--model", "llama-3.1-8b", "--quant", "q4_k_m", "--device", "rtx-5070-ti", "--engine", "llamacpp"]
    url, ctx = start_emulator(tmp_path, *args, "--served-name", "llama")
    with ctx as proc:
        wait_http(url + "/health", proc=proc)
        out = tmp_path / "sized"
        r = wave("bench", "--url", url, "--model", "llama", "-c", "1", "-n", "3", "--input-tokens", "64",
                 "--output-tokens", "24", "--out", str(out), "--no-plots")  # fmt: skip
        metrics = httpx.get(url + "/metrics").text
    assert r.returncode == 0, r.stderr
    s = BenchReport.load(out).runs[0].summary
    # TTFT = prefill plus loopback HTTP (~1 ms idle, tens of ms when the 2 shared cores are busy)
    prefill_ms = perf.prefill_seconds(64) * 1000
    assert s.ttft_ms.p50 is not None and prefill_ms <= s.ttft_ms.p50 <= prefill_ms + 25
    assert s.itl_ms.p50 == pytest.approx(perf.decode_step_seconds(1, 64 + 12) * 1000, rel=0.1)
    assert "llamacpp:requests_processing" in metrics and "vllm:" not in metrics


def test_completions_endpoint_and_json_output(emulator: str) -> None:
    r = wave("bench", "--url", emulator + "/v1", "--model", "emu-model", "--endpoint", "completions",
             "-n", "3", "--input-tokens", "16", "--output-tokens", "5", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["target"]["endpoint"] == "completions" and "requests" not in doc["runs"][0]
    s = doc["runs"][0]["summary"]
    assert s["completed"] == 3 and s["output_tokens"]["mean"] == 5 and s["input_tokens"]["mean"] == 16
