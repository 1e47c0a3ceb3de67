"""`wave models`: the local model store — pull, import, list, show, rm, quantize, quality."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from waveidp.cli._app import app, console, err_console, print_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.progress import Progress, TaskID

    from waveidp.models import ModelStore, QualityResult, StoredModel

models_app = typer.Typer(
    help="The local model store: pull from a hub, import, quantize, measure quality.", no_args_is_help=True
)
app.add_typer(models_app, name="models")

StoreOption = typer.Option(
    None, "--store", help="store folder (default WAVE_MODELS_DIR, else WAVE_HOME/models)", show_default=False
)
JsonOption = typer.Option(False, "--json", help="print JSON for scripts")


def _store(root: Path | None) -> ModelStore:
    from waveidp.models import ModelStore

    return ModelStore(root)


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"


def _params(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def _bytes_progress() -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def _steps_progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )


def _summary(m: StoredModel) -> str:
    man = m.manifest
    quant = f", {man.quant}" if man.quant else ""
    return (
        f"[bold]{man.name}[/]: {man.architecture}, {_params(man.params)} parameters{quant}, "
        f"{len(man.files)} file(s), {_mb(man.size)} in {m.folder}"
    )


@models_app.command("pull")
def pull(
    uri: str = typer.Argument(..., help="hf://ORG/REPO[@REVISION][:FILE-GLOB[,GLOB...]]"),
    name: str = typer.Option(None, "--name", help="store name (default: from the file or repository)"),
    store_dir: Path = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Download a model from a Hugging Face hub (HF_ENDPOINT for a mirror): resumable, sha256-checked."""
    from waveidp.models import PullProgress, plan_pull
    from waveidp.models import pull as do_pull

    store = _store(store_dir)
    plan = plan_pull(store, uri, name)
    bars = _bytes_progress()

    class Bars(PullProgress):
        task = None

        def file_started(self, path: str, size: int, done: int, how: str) -> None:
            label = path if how == "download" else f"{path} ({how})"
            self.task = bars.add_task(label, total=size, completed=done)

        def advance(self, n: int) -> None:
            if self.task is not None:
                bars.advance(self.task, n)

        def file_done(self, path: str) -> None:
            if self.task is not None:
                bars.update(self.task, completed=bars.tasks[self.task].total)

    err_console.print(
        f"{plan.ref.uri} at {plan.commit[:12]}: {len(plan.files)} file(s), {_mb(plan.total_bytes)}",
        highlight=False,
    )
    try:
        with bars:
            model, fetched = do_pull(store, plan, Bars())
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: run the same command again to resume", highlight=False)
        raise typer.Exit(130) from None
    if as_json:
        print_json({**model.manifest.model_dump(mode="json"), "downloaded_bytes": fetched})
        return
    note = "already up to date" if fetched == 0 else f"downloaded {_mb(fetched)}"
    console.print(f"{_summary(model)} ({note})", highlight=False, soft_wrap=True)


@models_app.command("import")
def import_(
    path: Path = typer.Argument(..., help="a .gguf file, or a folder with config.json and weights"),
    name: str = typer.Option(None, "--name", help="store name (default: from the file or folder name)"),
    store_dir: Path = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Copy a local model into the store (hashed, architecture read from its own header)."""
    from waveidp.models import import_path

    store = _store(store_dir)
    bars = _bytes_progress()
    with bars:
        task = bars.add_task(f"import {path.name}", total=None)
        model = import_path(store, path, name=name, progress=lambda n: bars.advance(task, n))
    if as_json:
        print_json(model.manifest)
        return
    console.print(_summary(model), highlight=False, soft_wrap=True)


@models_app.command("list")
def list_(store_dir: Path = StoreOption, as_json: bool = JsonOption) -> None:
    """Models in the store, with their format, size, source and measured quality."""
    store = _store(store_dir)
    stored = store.models()
    if as_json:
        print_json([m.manifest.model_dump(mode="json") for m in stored])
        return
    from rich.table import Table

    t = Table(title=f"models in {store.root}", title_justify="left")
    for col in ("name", "arch", "params", "quant", "size", "source", "KLD p95", "top-1"):
        t.add_column(col, justify="right" if col in ("params", "size", "KLD p95", "top-1") else "left")
    for m in stored:
        man = m.manifest
        q = man.best_quality()
        t.add_row(
            man.name,
            man.architecture,
            _params(man.params),
            man.quant or "-",
            _mb(man.size),
            man.source.uri,
            _kld_cell(q),
            f"{q.top1_agreement:.1%}" if q else "-",
        )
    console.print(t)
    for name, size in store.partials():
        if not name.startswith("quality-"):
            console.print(f"unfinished: {name} ({_mb(size)} kept; pull again to resume)", highlight=False)


def _kld_cell(q: QualityResult | None) -> str:
    if q is None:
        return "-"
    mark = "" if q.accepted is None else (" ok" if q.accepted else " [red]refused[/]")
    return f"{q.kld_p95:.4f}{mark}"


@models_app.command("show")
def show(name: str = typer.Argument(...), store_dir: Path = StoreOption, as_json: bool = JsonOption) -> None:
    """One model: source, files with sha256, architecture, quality measurements."""
    m = _store(store_dir).get(name)
    man = m.manifest
    if as_json:
        print_json(man)
        return
    from rich.table import Table

    console.print(_summary(m), highlight=False, soft_wrap=True)
    src = man.source
    console.print(f"source: {src.kind} {src.uri}", highlight=False, soft_wrap=True)
    if src.revision:
        console.print(f"revision: {src.revision}", highlight=False)
    if src.base:
        console.print(f"made from: {src.base} (sha256 {(src.base_sha256 or '')[:12]}…)", highlight=False)
    if src.command:
        console.print(f"command: {' '.join(src.command)}", highlight=False, soft_wrap=True)
    console.print(f"format: {man.format}, loads {man.weights}; licence: {man.license or 'not stated'}")
    files = Table(title="files", title_justify="left")
    for col in ("path", "size", "sha256"):
        files.add_column(col, justify="right" if col == "size" else "left")
    for f in man.files:
        files.add_row(f.path, _mb(f.size), f.sha256)
    console.print(files)
    if man.quality:
        _quality_table(man.quality, f"quality of {man.name}")


def _quality_table(results: list[QualityResult], title: str, names: list[str] | None = None) -> None:
    """One row per measurement; the base, the text and the policy limit go in the title when shared."""
    from rich.table import Table

    bases = {(q.against, q.text, q.tokens) for q in results}
    limits = {q.policy_max_kld_p95 for q in results if q.policy_max_kld_p95 is not None}
    if len(bases) == 1:
        against, text, tokens = next(iter(bases))
        title += f" (base {against}, {tokens:,} tokens of {text})"
    if len(limits) == 1:
        title += f", policy KLD p95 <= {next(iter(limits)):g}"
    t = Table(title=title, title_justify="left")
    cols = ["model"] if names else []
    if len(bases) > 1:
        cols += ["against", "tokens"]
    cols += ["KLD mean", "KLD p95", "KLD p99", "top-1", "PPL", "PPL base", "policy"]
    for col in cols:
        t.add_column(col, justify="left" if col in ("model", "against", "policy") else "right")
    for i, q in enumerate(results):
        row = [names[i]] if names else []
        if len(bases) > 1:
            row += [q.against, f"{q.tokens:,}"]
        policy = "-" if q.accepted is None else ("[green]accepted[/]" if q.accepted else "[red]refused[/]")
        row += [
            f"{q.kld_mean:.4f}",
            f"{q.kld_p95:.4f}",
            f"{q.kld_p99:.4f}",
            f"{q.top1_agreement:.1%}",
            f"{q.ppl:.2f}",
            f"{q.ppl_base:.2f}",
            policy,
        ]
        t.add_row(*row)
    console.print(t)


@models_app.command("rm")
def rm(names: list[str] = typer.Argument(...), store_dir: Path = StoreOption) -> None:
    """Remove models (and any unfinished pull of the same name)."""
    store = _store(store_dir)
    for name in names:
        _model, freed = store.remove(name)
        console.print(f"removed {name} ({_mb(freed)} freed)", highlight=False)


@models_app.command("quantize")
def quantize(
    name: str = typer.Argument(..., help="store name of a GGUF model (ideally F16/BF16)"),
    to: str = typer.Option(..., "--to", help="llama-quantize types, comma-separated: Q4_K_M,Q8_0,..."),
    imatrix: Path = typer.Option(None, "--imatrix", help="importance matrix file (from llama-imatrix)"),
    threads: int = typer.Option(1, "--threads", "-t", help="llama-quantize threads"),
    as_json: bool = JsonOption,
    store_dir: Path = StoreOption,
) -> None:
    """Make quantized copies with the real llama-quantize; each becomes a model of the store."""
    from waveidp.errors import InputError
    from waveidp.models import parse_types
    from waveidp.models import quantize as do_quantize

    if threads < 1 or threads > 4096:
        raise InputError(f"--threads {threads} is out of range", where="--threads", fix="use 1 to 4096")
    store = _store(store_dir)
    types = parse_types(to)
    base = store.get(name)
    if (base.manifest.quant or "") not in ("f32", "f16", "bf16"):
        err_console.print(
            f"[yellow]note[/]: {name} is {base.manifest.quant or 'not a float file'}; quantizing it again "
            "adds a second rounding on top of the first (llama-quantize --allow-requantize)",
            highlight=False,
        )
    made = []
    bars = _steps_progress()
    with bars:
        for qtype in types:
            task = bars.add_task(f"{name} -> {qtype}", total=None)
            model = do_quantize(
                store,
                name,
                qtype,
                threads=threads,
                imatrix=imatrix,
                on_step=_step_updater(bars, task),
            )
            made.append(model)
    if as_json:
        print_json([m.manifest.model_dump(mode="json") for m in made])
        return
    for m in made:
        console.print(_summary(m), highlight=False, soft_wrap=True)


def _step_updater(bars: Progress, task: TaskID) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        bars.update(task, completed=done, total=total)

    return update


@models_app.command("quality")
def quality(
    names: list[str] = typer.Argument(..., help="store names of the quantized models to judge"),
    against: str = typer.Option(..., "--against", help="store name of the base model (e.g. its F16)"),
    text: str = typer.Option("jargon", "--text", help="evaluation text: 'jargon' (shipped) or a file"),
    context: int = typer.Option(512, "--context", "-c", help="tokens per chunk"),
    chunks: int = typer.Option(16, "--chunks", help="chunks of the text to score (at most)"),
    threads: int = typer.Option(1, "--threads", "-t", help="llama-perplexity threads"),
    max_kld_p95: float = typer.Option(
        None, "--max-kld-p95", help="policy: accept a model only if its 95th-percentile KLD is at most this"
    ),
    store_dir: Path = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """KL divergence and top-token agreement against the base, with the real llama-perplexity."""
    from waveidp.errors import InputError
    from waveidp.models import Settings, base_logits, check_comparable, measure

    for opt, v, lo, hi in (("--context", context, 16, 1 << 20), ("--chunks", chunks, 1, 100_000)):
        if v < lo or v > hi:
            raise InputError(f"{opt} {v} is out of range", where=opt, fix=f"use {lo} to {hi}")
    if threads < 1 or threads > 4096:
        raise InputError(f"--threads {threads} is out of range", where="--threads", fix="use 1 to 4096")
    if max_kld_p95 is not None and max_kld_p95 < 0:
        raise InputError("--max-kld-p95 must be >= 0", where="--max-kld-p95")
    store = _store(store_dir)
    base = store.get(against)
    candidates = [store.get(n) for n in names]
    for c in candidates:
        check_comparable(c, base)  # before the base's (long) run
    settings = Settings(text=text, context=context, chunks=chunks, threads=threads, max_kld_p95=max_kld_p95)
    results = []
    bars = _steps_progress()
    with bars:
        task = bars.add_task(f"{against} (base logits)", total=chunks)
        with base_logits(store, base, settings, _step_updater(bars, task)) as logits:
            for c in candidates:
                t = bars.add_task(c.name, total=chunks)
                r = measure(c, base, logits, settings, _step_updater(bars, t))
                store.update(c, c.manifest.with_quality(r))
                results.append(r)
    if as_json:
        pairs = zip(candidates, results, strict=True)
        print_json([{"model": c.name, **r.model_dump(mode="json")} for c, r in pairs])
    else:
        _quality_table(results, f"quality against {against}", [c.name for c in candidates])
    refused = [c.name for c, r in zip(candidates, results, strict=True) if r.accepted is False]
    if refused:
        err_console.print(f"refused by the policy (KLD p95 > {max_kld_p95:g}): {', '.join(refused)}")
        raise typer.Exit(1)
