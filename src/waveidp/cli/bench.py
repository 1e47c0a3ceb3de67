"""`wave bench` (and `bench compare`), `wave emulate`, `wave calibrate`: parse, call waveidp.bench, print."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from waveidp.cli._app import app, console, err_console, print_json
from waveidp.errors import InputError, WaveError

if TYPE_CHECKING:
    pass

bench_app = typer.Typer(
    help="Benchmark an OpenAI-compatible endpoint (AIPerf metric definitions).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(bench_app, name="bench")


def _command_line() -> str:
    return shlex.join(["wave", *sys.argv[1:]])


@bench_app.callback()
def bench(
    ctx: typer.Context,
    url: str | None = typer.Option(
        None, "--url", help="base URL of the endpoint, e.g. http://127.0.0.1:8080"
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="model name as the server knows it"),
    endpoint: str = typer.Option("chat", help="chat or completions"),
    api_key: str | None = typer.Option(None, envvar="WAVE_API_KEY", help="bearer token (env WAVE_API_KEY)"),
    concurrency: str | None = typer.Option(
        None, "--concurrency", "-c", help="closed-loop sweep, e.g. 1,4,16,64"
    ),
    rate: str | None = typer.Option(
        None, "--rate", "-r", help="open-loop Poisson sweep in requests/s, e.g. 1,2,4"
    ),
    requests: int = typer.Option(100, "--requests", "-n", help="requests per load point (upper bound)"),
    duration: float = typer.Option(60.0, "--duration", help="seconds per load point (upper bound)"),
    dataset: str = typer.Option("synthetic", help="synthetic (random words) or chat (shipped real prompts)"),
    input_tokens: str = typer.Option("512", help="prompt length N or MEAN:STDDEV (synthetic)"),
    output_tokens: str = typer.Option("128", help="output length N or MEAN:STDDEV"),
    ignore_eos: bool = typer.Option(True, help="send ignore_eos/min_tokens so outputs have the asked length"),
    warmup: int = typer.Option(1, help="warm-up requests before measuring (excluded)"),
    point_warmup: int = typer.Option(
        0, help="also run and exclude the first N requests of every load point (steady state)"
    ),
    slo: str | None = typer.Option(None, help="goodput SLO, e.g. ttft_ms=500,itl_ms=50"),
    ramp: float = typer.Option(0.0, help="spread the first requests of a concurrency point over this many s"),
    timeout: float = typer.Option(600.0, help="per-request timeout in seconds"),
    grace: float = typer.Option(30.0, help="seconds to let in-flight requests finish after --duration"),
    seed: int = typer.Option(0, help="seed for prompts and arrival times"),
    price_kwh: float | None = typer.Option(None, help="electricity price per kWh for cost per 1M tokens"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="directory for results.json/csv, plots, report"
    ),
    plots: bool = typer.Option(True, help="write PNG plots and the HTML report (with --out)"),
    chunks: bool = typer.Option(True, help="keep every chunk's arrival time in results.json"),
    predict: bool = typer.Option(
        False, help="add the sizing prediction and its error (needs --model-id, --device)"
    ),
    model_id: str | None = typer.Option(None, help="catalog model id or path for sizing (default: --model)"),
    quant: str | None = typer.Option(None, help="weight format for sizing, e.g. q4_k_m, bf16"),
    device: list[str] = typer.Option([], "--device", help="hardware catalog id(s) the server runs on"),
    engine: str | None = typer.Option(None, help="engine of the server for sizing: vllm, llamacpp, ..."),
    threads: int | None = typer.Option(None, help="for sizing: CPU threads the server uses (llama.cpp -t)"),
    parallel: int | None = typer.Option(None, help="for sizing: llama.cpp slots (-np)"),
    prompt_cache: bool | None = typer.Option(
        None, help="for sizing: llama-server's host prompt cache (--no-prompt-cache: it runs --cache-ram 0)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the summaries as JSON"),
) -> None:
    """Run load points against URL and report TTFT, ITL, E2E, throughput, goodput and errors."""
    if ctx.invoked_subcommand is not None:
        return
    if not url or not model:
        raise InputError(
            "--url and --model are required",
            where="wave bench",
            fix="e.g. wave bench --url http://127.0.0.1:8080 --model my-model -c 1,4",
        )
    import asyncio
    import signal

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from waveidp.bench.client import Target
    from waveidp.bench.datasets import ChatPrompts, LengthDist, SyntheticPrompts
    from waveidp.bench.metrics import Slo
    from waveidp.bench.outputs import build_report, print_summary
    from waveidp.bench.profiles import parse_loads
    from waveidp.bench.runner import BenchConfig, BenchError, describe_failure, run_bench

    if endpoint not in ("chat", "completions"):
        raise InputError(f"unknown endpoint '{endpoint}'", where="--endpoint", fix="use chat or completions")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"'{url}' is not an http(s) URL", where="--url")
    out_len = LengthDist.parse(output_tokens, option="--output-tokens")
    if dataset == "synthetic":
        ds: Any = SyntheticPrompts(LengthDist.parse(input_tokens, option="--input-tokens"), out_len, seed)
    elif dataset == "chat":
        ds = ChatPrompts(out_len, seed)
    else:
        raise InputError(f"unknown dataset '{dataset}'", where="--dataset", fix="use synthetic or chat")
    deployment = None
    if predict or device or engine or model_id or quant or threads or parallel:
        if not device:
            raise InputError("sizing needs the hardware", where="--device", fix="e.g. --device rtx-5070-ti")
        from waveidp.bench.predict import deployment_record

        settings = (("threads", threads), ("parallel", parallel), ("prompt_cache", prompt_cache))
        extra = {k: v for k, v in settings if v is not None}
        deployment = deployment_record(model_id or model, quant, device, engine, **extra)
    cfg = BenchConfig(
        target=Target(url, model, endpoint, api_key, ignore_eos, timeout),  # type: ignore[arg-type]
        loads=parse_loads(concurrency, rate, requests, duration),
        dataset=ds,
        slo=Slo.parse(slo),
        warmup=max(0, warmup),
        point_warmup=max(0, point_warmup),
        ramp_s=max(0.0, ramp),
        grace_s=max(0.0, grace),
        seed=seed,
        price_kwh=price_kwh,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        tasks = [
            progress.add_task(p.label, total=p.requests + cfg.point_warmup, start=False) for p in cfg.loads
        ]

        def on_progress(i: int, done: int, planned: int) -> None:
            if done == 1:
                progress.start_task(tasks[i])
            progress.update(tasks[i], completed=done)

        async def main() -> Any:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            try:
                return await run_bench(cfg, stop, on_progress)
            finally:
                loop.remove_signal_handler(signal.SIGINT)
                loop.remove_signal_handler(signal.SIGTERM)

        try:
            import uvloop

            outcome = uvloop.run(main())
        except ImportError:
            outcome = asyncio.run(main())

    report = build_report(outcome, cfg, _command_line(), deployment=deployment, chunks=chunks)
    if predict and deployment:
        from waveidp.bench.predict import predict_runs

        report.predictions = predict_runs(report)
    from waveidp.bench.outputs import write_all

    written = write_all(report, out, plots) if out else []
    if as_json:
        print_json(report.to_dict(exclude={"runs": {"__all__": {"requests", "telemetry_samples"}}}))
    else:
        print_summary(report, console)
        for p in written:
            err_console.print(f"wrote {p}")
    if outcome.interrupted:
        where = f"partial results written to {out}" if out else "no --out given, nothing written"
        err_console.print(f"[yellow]interrupted: {where}[/]")
        raise typer.Exit(130)
    measured = [r for run in outcome.runs for r in run.records]
    if measured and not any(r.ok for r in measured):
        raise BenchError("no request completed: " + describe_failure(measured, cfg.target))


@bench_app.command("compare")
def compare(
    a: Path = typer.Argument(..., help="results.json (or its directory) A"),
    b: Path = typer.Argument(..., help="results.json (or its directory) B"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show two bench results side by side, matched by load point, with B/A ratios."""
    from waveidp.bench.outputs import print_compare
    from waveidp.bench.outputs.console import compare_rows
    from waveidp.bench.report import BenchReport

    da, db = BenchReport.load(a), BenchReport.load(b)
    if as_json:
        print_json(compare_rows(da, db))
    else:
        print_compare(da, db, console)


@app.command("emulate")
def emulate(
    model: str = typer.Option(..., "--model", help="catalog model id (or config.json/.gguf path) to emulate"),
    quant: str | None = typer.Option(None, help="weight format, e.g. q4_k_m, bf16"),
    device: list[str] = typer.Option([], "--device", help="hardware catalog id(s), e.g. rtx-5070-ti"),
    engine: str = typer.Option("vllm", help="vllm or llamacpp: metric names, health shape, defaults"),
    port: int = typer.Option(8000, help="TCP port"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    served_name: str | None = typer.Option(None, help="model name clients send (default: --model)"),
    context: int = typer.Option(4096, help="context per sequence (max-model-len / slot size)"),
    max_batch: int | None = typer.Option(
        None, help="max sequences per step (default: vLLM max-num-seqs for the GPU, llama.cpp -np)"
    ),
    parallel: int = typer.Option(4, help="llama.cpp slots (-np)"),
    speed: float = typer.Option(1.0, help="run this many times faster than the predicted timing"),
    step_ms: float | None = typer.Option(None, help="fixed decode step instead of the sizing model (ms)"),
    prefill_ms: float = typer.Option(30.0, help="fixed prefill per request with --step-ms (ms)"),
    kv_tokens: int = typer.Option(1 << 20, help="KV capacity in tokens with --step-ms"),
) -> None:
    """Serve an OpenAI-compatible emulated engine whose step times follow the sizing model."""
    from waveidp.bench.emulator import EmulatorConfig, FixedTiming, create_app

    if engine not in ("vllm", "llamacpp"):
        raise InputError(f"unknown engine '{engine}'", where="--engine", fix="use vllm or llamacpp")
    if speed <= 0:
        raise InputError("must be positive", where="--speed")
    if not 0 < port < 65536:
        raise InputError(f"port {port} is out of range", where="--port")
    timing: Any
    if step_ms is not None:
        if step_ms <= 0 or prefill_ms < 0 or kv_tokens < 1:
            raise InputError(
                "--step-ms must be > 0, --prefill-ms >= 0, --kv-tokens >= 1", where="wave emulate"
            )
        timing = FixedTiming(step_s=step_ms / 1000, prefill_s=prefill_ms / 1000, kv_tokens=kv_tokens)
        what = f"fixed timing: step {step_ms:g} ms, prefill {prefill_ms:g} ms, KV {kv_tokens} tokens"
        batch = max_batch or 256
    else:
        if not device:
            raise InputError(
                "the sizing model needs the hardware",
                where="--device",
                fix="e.g. --device rtx-5070-ti, or give --step-ms for fixed timing",
            )
        from waveidp.sizing import Deployment, PerfModel

        batch = max_batch or (parallel if engine == "llamacpp" else 0)
        extra = {"parallel": batch} if engine == "llamacpp" else {}  # llama-server's slots (-np)
        d = Deployment.build(model, quant, device, engine, context=context, **extra)
        batch = batch or d.max_num_seqs  # vLLM's default for the GPU (256, or 1024 from 70 GiB)
        timing = PerfModel(d)
        what = (
            f"{d.model.id} {d.quant.id} on {', '.join(device)} ({engine}): "
            f"decode step {timing.decode_step_seconds(1, 512) * 1000:.2f} ms at batch 1, "
            f"prefill 512 tokens {timing.prefill_seconds(512) * 1000:.1f} ms, "
            f"KV {timing.kv_capacity_tokens()} tokens"
        )
    if timing.kv_capacity_tokens() < 1:
        raise WaveError(
            "the model does not fit on that hardware: no room for KV cache",
            fix="check `wave size` for this deployment",
        )
    config = EmulatorConfig(
        model=served_name or model,
        timing=timing,
        engine=engine,  # type: ignore[arg-type]
        max_batch=batch,
        speed=speed,
        max_model_len=context,
        description=what,
    )
    err_console.print(f"wave emulate: {what}; max batch {batch}; speed x{speed:g}")
    err_console.print(f"serving '{config.model}' at http://{host}:{port}/v1 (metrics at /metrics)")
    from aiohttp import web

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(create_app(config), host=host, port=port, print=None, access_log=None)


@app.command("calibrate")
def calibrate_cmd(
    results: list[Path] = typer.Argument(None, help="results.json files (or --out dirs) of wave bench runs"),
    out: Path | None = typer.Option(None, help="calibration file (default: where wave size reads it)"),
    dry_run: bool = typer.Option(False, help="fit and report, write nothing"),
    as_json: bool = typer.Option(False, "--json"),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="measure this node instead: `wave fleet detect --calibrate --merge FLEET` (the real "
        "llama-bench on the packaged models, on the CPU and each NVIDIA GPU or Jetson, a minute or a "
        "few; the fit is stored with each device)",
    ),
    devices: list[str] = typer.Option(
        [], "--device", "-d", help="with --quick: only this device, e.g. cpu or gpu0 (repeatable)"
    ),
    fleet_file: Path = typer.Option(
        Path("wave.yaml"), "--fleet", "-f", help="with --quick: the fleet file the node is merged into"
    ),
    name: str = typer.Option(None, "--name", help="with --quick: node name (default: this host's name)"),
    models: list[Path] = typer.Option(
        [], "--model", "-m", help="with --quick: also calibrate on this GGUF file (repeatable)"
    ),
    threads: str = typer.Option(
        None, "--threads", "-t", help="with --quick: thread counts, e.g. 1,8 (default: 1, half, all cores)"
    ),
    reps: int = typer.Option(3, "--reps", help="with --quick: llama-bench repetitions per test"),
) -> None:
    """Fit sizing efficiency factors per (device, engine) from bench results, or (--quick) measure
    this node with llama-bench and store the fit in the fleet file; print error before/after."""
    from rich import box
    from rich.table import Table

    from waveidp.bench.calibrate import calibrate
    from waveidp.bench.predict import PREDICTED
    from waveidp.bench.report import BenchReport
    from waveidp.sizing import save_calibration

    if devices and not quick:
        raise InputError("--device is only used with --quick", where="--device", fix="add --quick")
    if quick:
        if results:
            raise InputError(
                "--quick measures this node; it takes no results files", where="RESULTS", fix="drop them"
            )
        from waveidp.cli.fleet import detect

        detect(
            name=name, merge=fleet_file, as_json=as_json, calibrate=True, calibrate_devices=devices,
            models=models, packaged=True, threads=threads, reps=reps, probe=True,
        )  # fmt: skip
        return
    if not results:
        raise InputError(
            "no bench results to fit", where="RESULTS", fix="give wave bench results, or --quick to measure"
        )
    fits = calibrate([BenchReport.load(p) for p in results])
    path = None
    if not dry_run:
        path = save_calibration({(f.hardware_id, f.engine): f.after for f in fits}, out)
    if as_json:
        print_json(
            {
                "written": str(path) if path else None,
                "fits": [
                    {
                        "hardware": f.hardware_id,
                        "engine": f.engine,
                        "points": f.points,
                        "before": f.before.model_dump(),
                        "after": f.after.model_dump(),
                        "error_before_pct": f.error_before,
                        "error_after_pct": f.error_after,
                    }
                    for f in fits
                ],
            }
        )
        return

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f}%"

    factors = Table(title="wave calibrate: fitted efficiency factors (before -> after)", box=box.SIMPLE_HEAD)
    errors = Table(title="mean |prediction error| vs measurement (before -> after)", box=box.SIMPLE_HEAD)
    for col in ("device", "engine", "points", "decode bw", "prefill", "overhead ms"):
        factors.add_column(col, justify="left" if col in ("device", "engine") else "right")
    for col in ("device", "engine", *(m.label for m in PREDICTED)):
        errors.add_column(col, justify="left" if col in ("device", "engine") else "right")
    for f in fits:
        b, a = f.before, f.after
        factors.add_row(
            f.hardware_id, f.engine, str(f.points),
            f"{b.decode_bandwidth:.3g} -> {a.decode_bandwidth:.3g}",
            f"{b.prefill_compute:.3g} -> {a.prefill_compute:.3g}",
            f"{b.step_overhead_s * 1000:.3g} -> {a.step_overhead_s * 1000:.3g}",
        )  # fmt: skip
        cells = (f"{pct(f.error_before[m.key])} -> {pct(f.error_after[m.key])}" for m in PREDICTED)
        errors.add_row(f.hardware_id, f.engine, *cells)
    console.print(factors)
    console.print(errors)
    console.print(f"wrote {path}" if path else "dry run: nothing written")
