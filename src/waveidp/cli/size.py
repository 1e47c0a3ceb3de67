"""`wave size`, `wave fit`, `wave claims`: what fits where, how fast, and whether a claim can be true."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from waveidp.cli._app import app, console, print_json
from waveidp.errors import InputError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from waveidp.catalog import Hardware
    from waveidp.fleet.models import Node
    from waveidp.sizing import SizingResult
    from waveidp.sizing._claims import ClaimCheck
    from waveidp.sizing._fit import FitRow

_VERDICT_STYLE = {
    "fits": "green",
    "tight": "yellow",
    "offload": "cyan",
    "impossible": "red",
    "plausible": "green",
    "optimistic": "yellow",
}


# the pydantic fields of Deployment and SizingRequest hold the bounds; a refusal names the option
_OPTIONS = {
    "context": "--context",
    "prompt_tokens": "--prompt-tokens",
    "output_tokens": "--output-tokens",
    "concurrency": "--concurrency",
    "tp": "--tp",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "n_gpu_layers": "--n-gpu-layers",
    "threads": "--threads",
    "arrival": "--arrival",
}


@contextmanager
def _options_checked() -> Iterator[None]:
    """Turn a value the sizing models refuse into one line that names the command-line option."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        raise _option_error(exc) from None


def _option_error(exc: ValidationError) -> InputError:
    from waveidp.sizing import Deployment, SizingRequest

    err = exc.errors()[0]
    name = str(err["loc"][-1]) if err["loc"] else ""
    option = _OPTIONS.get(name, name or "input")
    value = err.get("input")
    if err["type"] == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        what = f"unknown {option.strip('-')} pattern {value!r}"
        return InputError(what, where=option, fix=f"use {expected}")
    field = {**Deployment.model_fields, **SizingRequest.model_fields}.get(name)
    bounds = [
        f"{op} {getattr(m, attr):g}"
        for m in (field.metadata if field else [])
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if getattr(m, attr, None) is not None
    ]
    shown = f"{value:g}" if isinstance(value, int | float) else repr(value)
    return InputError(
        f"{option} {shown} is out of range",
        where=option,
        fix=f"use a value {' and '.join(bounds)}" if bounds else err["msg"],
    )


@app.command("size")
def size(
    model: str = typer.Option(..., "--model", "-m", help="catalog id, HF config.json or .gguf file"),
    quant: str = typer.Option(
        None,
        "--quant",
        "-q",
        help="bf16, fp8, awq, q4_k_m, ... (default: the file's, else bf16 for vLLM, q4_k_m for llama.cpp)",
    ),
    device: list[str] = typer.Option(
        ...,
        "--device",
        "-d",
        help="hardware id, or NODE/DEVICE of the --fleet file (its detected description and calibration); "
        "repeat for GPU + CPU (hybrid)",
    ),
    fleet_file: Path = typer.Option(None, "--fleet", "-f", help="fleet file for NODE/DEVICE ids (wave.yaml)"),
    engine: str = typer.Option(None, "--engine", "-e", help="vllm | llamacpp | transformers | trtllm"),
    context: int = typer.Option(4096, "--context", "-c", help="tokens per sequence (max-model-len / slot)"),
    prompt_tokens: int = typer.Option(512, "--prompt-tokens", help="prompt length of a request"),
    output_tokens: int = typer.Option(256, "--output-tokens", help="generated tokens per request"),
    concurrency: int = typer.Option(1, "--concurrency", help="requests in flight together"),
    arrival: str = typer.Option(
        "burst",
        "--arrival",
        help="burst: the clients start together (wave bench -c); steady: starts spread out (a service)",
    ),
    tp: int = typer.Option(1, "--tp", help="tensor-parallel GPUs (one --device id is used N times)"),
    kv_dtype: str = typer.Option(None, "--kv-dtype", help="KV cache dtype (fp16, fp8, q8_0, ...)"),
    gpu_memory_utilization: float = typer.Option(0.9, "--gpu-memory-utilization", help="vLLM memory share"),
    n_gpu_layers: int = typer.Option(
        None, "--n-gpu-layers", "-ngl", help="llama.cpp -ngl (default: all that fit)"
    ),
    threads: int = typer.Option(None, "--threads", "-t", help="CPU threads (default: all cores)"),
    prompt_cache: bool = typer.Option(
        True, help="llama-server's host prompt cache (its default; --no-prompt-cache = --cache-ram 0)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Predict memory, max concurrency, TTFT, ITL and throughput of a model on a device set."""
    from waveidp.sizing import Deployment, SizingRequest, estimate

    extra: dict[str, Any] = {
        "context": context,
        "gpu_memory_utilization": gpu_memory_utilization,
        "prompt_cache": prompt_cache,
    }
    if kv_dtype:
        extra["kv_dtype"] = kv_dtype
    if n_gpu_layers is not None:
        extra["n_gpu_layers"] = n_gpu_layers
    if threads is not None:
        extra["threads"] = threads
    with _options_checked():
        d = Deployment.build(model, quant, _devices(device, fleet_file), engine, tp=tp, **extra)
        request = SizingRequest(
            deployment=d,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            concurrency=concurrency,
            arrival=arrival,  # type: ignore[arg-type]
        )
    result = estimate(request)
    if as_json:
        print_json(result)
    else:
        _print_result(result, {h.id: h.label for h in d.devices})


def _devices(ids: list[str], fleet_file: Path | None) -> list[Hardware]:
    """Catalog ids as they are; NODE/DEVICE as that fleet device (detected description, calibration)."""
    from waveidp import catalog, fleet

    f = fleet.load(fleet_file) if fleet_file is not None else None
    out = []
    for ref in ids:
        if "/" not in ref:
            out.append(catalog.hardware(ref))
            continue
        if f is None:
            raise InputError(f"{ref} names a fleet device but no --fleet file is given", where="--device")
        node_name, _, dev_id = ref.partition("/")
        try:
            node = f.node(node_name)
            dev = next(d for d in node.devices if d.id == dev_id)
        except (KeyError, StopIteration):
            known = ", ".join(f"{n.name}/{d.id}" for n in f.nodes for d in n.devices) or "none"
            raise InputError(
                f"no device {ref} in {fleet_file}", where="--device", fix=f"one of {known}"
            ) from None
        out.append(fleet.device_hardware(dev, node))  # one unit, like a catalog id (--tp for more)
    return out


def _print_result(r: SizingResult, labels: dict[str, str]) -> None:
    """`labels`: hardware id -> how to name it (a detected CPU by its detected name)."""
    from rich.table import Table

    from waveidp.sizing import gb

    style = _VERDICT_STYLE[r.verdict]
    console.print(
        f"[bold]{r.model}[/] {r.quant} on {' + '.join(labels.get(i, i) for i in r.devices)} with {r.engine}: "
        f"[bold {style}]{r.verdict}[/]",
        highlight=False,
    )
    for reason in r.reasons:
        console.print(f"  - {reason}", highlight=False, soft_wrap=True)
    mem = Table(title="memory", title_justify="left")
    for col in ("device", "role", "layers", "weights", "KV", "overhead", "used", "usable"):
        mem.add_column(col, justify="left" if col in ("device", "role") else "right")
    for dm in r.memory.devices:
        mem.add_row(
            labels.get(dm.device, dm.device),
            dm.role,
            f"{dm.layers:g}",
            *(gb(n, 2) for n in (dm.weights_bytes, dm.kv_bytes, dm.overhead_bytes, dm.used_bytes)),
            gb(dm.available_bytes, 2),
        )
    console.print(mem)
    console.print(
        f"KV {r.memory.kv_bytes_per_token:,} B/token ({r.memory.kv_dtype}); "
        f"capacity {r.memory.kv_capacity_tokens:,} tokens; max concurrency at {r.context} tokens: "
        f"{r.max_concurrency}",
        highlight=False,
    )
    curve = Table(
        title=f"performance (prompt {r.prompt_tokens}, output {r.output_tokens} tokens)", title_justify="left"
    )
    for col in ("concurrency", "TTFT ms", "ITL ms", "output tok/s"):
        curve.add_column(col, justify="right")
    for p in r.curve:
        mark = " *" if p.concurrency == r.performance.concurrency else ""
        curve.add_row(
            f"{p.concurrency}{mark}", f"{p.ttft_ms:,.1f}", f"{p.itl_ms:,.2f}", f"{p.output_tokens_per_s:,.1f}"
        )
    console.print(curve)
    flags = " ".join(f"{k} {v}" for k, v in r.engine_flags.items())
    console.print(f"engine flags: [bold]{flags}[/]", highlight=False)


@app.command("fit")
def fit(
    fleet_file: Path = typer.Option(None, "--fleet", "-f", help="wave.yaml (default: this machine)"),
    model: list[str] = typer.Option(
        None, "--model", "-m", help="catalog id or path; repeatable (default: every catalog model)"
    ),
    quant: str = typer.Option(None, "--quant", "-q", help="only this weight format"),
    context: int = typer.Option(4096, "--context", "-c", help="tokens per sequence"),
    max_kld_p95: float = typer.Option(
        None,
        "--max-kld-p95",
        help="for store models with measured quality: the fastest format within this KLD p95 wins "
        "(default: the limit stored with `wave models quality --max-kld-p95`)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON rows"),
) -> None:
    """Rank the fleet's devices (or this machine's) for each model: best verdict, format and engine."""
    from waveidp import catalog
    from waveidp.fleet import device_hardware
    from waveidp.sizing._fit import fit_fleet

    if max_kld_p95 is not None and max_kld_p95 < 0:
        raise InputError(f"--max-kld-p95 {max_kld_p95:g} is below 0", where="--max-kld-p95", fix="use >= 0")
    if quant:
        catalog.quant(quant)  # unknown ids fail here with suggestions
    models = [catalog.model(m) for m in model] if model else list(catalog.all_models().values())
    variants, stored_limit = _store_variants(models)
    with _options_checked():
        rows = fit_fleet(
            _nodes(fleet_file),
            models,
            hardware_of=device_hardware,
            quant=quant.lower() if quant else None,
            context=context,
            variants=variants,
            max_kld_p95=max_kld_p95 if max_kld_p95 is not None else stored_limit,
        )
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    from rich.table import Table

    where = str(fleet_file) if fleet_file else "this machine (detected)"
    table = Table(title=f"what runs where: {where}, context {context}", title_justify="left")
    cols = ["model", "node", "devices", "engine", "quant", "verdict", "decode tok/s", "TTFT ms", "max conc"]
    with_kld = any(r.kld_p95 is not None for r in rows)
    if with_kld:
        cols.append("KLD p95")
    for col in cols:
        numeric = col in ("decode tok/s", "TTFT ms", "max conc", "KLD p95")
        table.add_column(col, justify="right" if numeric else "left")
    for r in rows:
        style = _VERDICT_STYLE[r.verdict]
        cells = [
            r.model if not r.variant or r.variant == r.model else f"{r.model} ({r.variant})",
            r.node,
            "+".join(_compact(r.device_labels)),
            r.engine,
            r.quant,
            f"[{style}]{r.verdict}[/]",
            *_speed(r),
        ]
        if with_kld:
            cells.append("-" if r.kld_p95 is None else f"{r.kld_p95:.4f}")
        table.add_row(*cells)
    console.print(table)
    fitted = {r.model for r in rows}
    for m in models:
        if m.id not in fitted and m.id in variants:
            console.print(f"{m.id}: every stored format was refused by its quality policy", highlight=False)


def _store_variants(models: list[Any]) -> tuple[dict[str, Any], float | None]:
    """The store's formats of each model that is a store model, and the tightest stored KLD limit."""
    from waveidp.models import ModelStore
    from waveidp.models._variants import fit_variants

    store = ModelStore(create=False)
    variants: dict[str, Any] = {}
    limits = []
    for m in models:
        if m.source.startswith("model store:") and store.has(m.id):
            variants[m.id], limit = fit_variants(store, m.id)
            if limit is not None:
                limits.append(limit)
    return variants, min(limits) if limits else None


def _speed(r: FitRow) -> tuple[str, str, str]:
    if r.verdict == "impossible":
        return "-", "-", "0"
    return f"{r.decode_tokens_per_s:,.1f}", f"{r.ttft_ms:,.0f}", str(r.max_concurrency)


def _compact(ids: list[str]) -> list[str]:
    out: list[str] = []
    for i in dict.fromkeys(ids):
        n = ids.count(i)
        out.append(f"{n}x{i}" if n > 1 else i)
    return out


def _nodes(fleet_file: Path | None) -> list[Node]:
    """The fleet file's nodes, or this machine's (detected)."""
    if fleet_file is None:
        from waveidp.fleet.detect import detect_local_node

        return [detect_local_node()]
    from waveidp import fleet

    return list(fleet.load(fleet_file).nodes)


@app.command("claims")
def claims(
    file: Path = typer.Argument(
        ..., help="claims as YAML or CSV (device, model, quant, engine, metric, value, source, note)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON rows"),
) -> None:
    """Check claimed figures against the physical bound and the prediction."""
    from waveidp.sizing._claims import check_claims, load_claims

    checks = check_claims(load_claims(file))
    if as_json:
        print_json([c.model_dump(mode="json") for c in checks])
        return
    _print_claims(checks)


def _print_claims(checks: list[ClaimCheck]) -> None:
    from rich.table import Table

    table = Table(
        title="claims check (bound = physics at 100% of peak; predicted = Wave's model)", title_justify="left"
    )
    for col in ("#", "claim", "bound", "predicted", "verdict"):
        table.add_column(col, justify="right" if col in ("#", "bound", "predicted") else "left")
    for i, c in enumerate(checks, 1):
        style = _VERDICT_STYLE.get(c.verdict, "white")
        table.add_row(str(i), c.summary, c.bound_text, c.predicted_text, f"[{style}]{c.verdict}[/]")
    console.print(table)
    for i, c in enumerate(checks, 1):
        console.print(f"[bold]{i}.[/] {c.arithmetic}", highlight=False, soft_wrap=True)
        if c.claim.source:
            console.print(f"   source: {c.claim.source}: {c.claim.quote!r}", highlight=False, soft_wrap=True)
        if c.claim.note:
            console.print(f"   assumed: {c.claim.note}", highlight=False, soft_wrap=True)
