"""`wave exporter`: GPU and host telemetry for Prometheus, in DCGM exporter's metric names."""

from __future__ import annotations

from pathlib import Path

import typer

from waveidp.cli._app import app, console, err_console


@app.command()
def exporter(
    host: str = typer.Option(
        "0.0.0.0", help="listen address (exporters listen on every interface by default)"
    ),
    port: int = typer.Option(9401, min=0, max=65535, help="listen port (9400 is DCGM exporter's)"),
    interval: float = typer.Option(5.0, min=0.1, max=3600, help="seconds between device reads"),
    gpu: bool = typer.Option(True, "--gpu/--no-gpu", help="read GPUs (off where DCGM exporter runs)"),
    tegrastats: Path | None = typer.Option(None, help="tegrastats binary (default: found on PATH)"),
    hostname: str | None = typer.Option(None, help="Hostname label (default: $NODE_NAME, else this host)"),
    once: bool = typer.Option(False, "--once", help="print one exposition to stdout and exit"),
) -> None:
    """Serve /metrics: NVIDIA GPUs through NVML, Jetson through tegrastats, CPU/RAM/RAPL from the OS.

    Sources that are not there (no NVIDIA driver, not a Jetson, RAPL not readable) are left out
    and reported by wave_exporter_source_available; see docs/observe.md."""
    import os
    import signal
    import threading

    from waveidp.errors import InputError
    from waveidp.observe import NodeCollector, TegrastatsReader, start_exporter

    collector = NodeCollector(
        interval,
        gpu=gpu,
        tegrastats=TegrastatsReader(str(tegrastats) if tegrastats else None, interval_s=interval),
    )
    collector.hostname = hostname or os.environ.get("NODE_NAME") or collector.hostname
    if once:
        from prometheus_client import CollectorRegistry, generate_latest

        from waveidp.observe.exposition import NodeMetrics

        collector.open()
        if collector.sources["tegrastats"].available:
            collector.tegrastats.read_first(timeout_s=max(3 * interval, 5.0))
            collector.sample()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(NodeMetrics(collector, stale_after_s=float("inf")))
        try:
            typer.echo(generate_latest(registry).decode(), nl=False)
        finally:
            collector.close()
        return
    try:
        running = start_exporter(collector, host, port)
    except OSError as exc:
        collector.close()
        raise InputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", where="wave exporter", fix="pick --port"
        ) from exc
    for name, state in collector.sources.items():
        mark = "[green]in use[/]" if state.available else "[dim]absent[/]"
        err_console.print(f"  {name:<10} {mark} {state.detail}", highlight=False)
    console.print(
        f"wave exporter on http://{host}:{running.port}/metrics every {interval:g} s", highlight=False
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        running.close()
