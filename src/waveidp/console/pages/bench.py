"""Benchmarks: the `wave bench` result folders under the configured directory, one run's report
(load points, latency and throughput tables, the plots, predicted vs measured), and a short bench
against a model started from the page with live progress (admin only, bounded: `bench_job`)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from waveidp.bench.report import BenchReport
from waveidp.console.access import Refused
from waveidp.console.bench_job import MAX_DURATION_S, MAX_OUTPUT_TOKENS, MAX_REQUESTS, BenchJob, BenchSpec
from waveidp.console.options import PATH
from waveidp.console.sessions import Session
from waveidp.errors import InputError, WaveError

if TYPE_CHECKING:
    from waveidp.console.app import Console

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PLOTS = ("throughput_latency.png", "ttft_distribution.png", "itl_distribution.png")


@dataclass(frozen=True)
class RunFolder:
    name: str
    modified: float
    command: str
    model: str
    points: list[str]
    started_at: str
    partial: bool


def _load(folder: Path) -> BenchReport | None:
    try:
        return BenchReport.load(folder)
    except WaveError:
        return None


def folders(root: Path) -> list[RunFolder]:
    """Result folders (a wave bench results.json inside) directly under `root`, newest first."""
    out = []
    for d in root.iterdir() if root.is_dir() else []:
        report = _load(d) if d.is_dir() and _NAME.match(d.name) else None
        if report is None:
            continue
        out.append(
            RunFolder(
                name=d.name,
                modified=(d / "results.json").stat().st_mtime,
                command=report.command,
                model=report.target.model,
                points=[r.label for r in report.runs],
                started_at=report.started_at,
                partial=report.partial,
            )
        )
    return sorted(out, key=lambda f: f.modified, reverse=True)


class BenchRunner:
    """At most one bench at a time from this gateway process."""

    def __init__(self) -> None:
        self.job: BenchJob | None = None

    def start(self, spec: BenchSpec) -> BenchJob:
        if self.job is not None and self.job.running:
            raise Refused(409, "a bench is already running; stop it or wait for it")
        spec.check()
        job = BenchJob(spec)
        job.start()
        self.job = job
        return job

    def close(self) -> None:
        if self.job is not None:
            self.job.kill()


def routes(console: Console) -> list[Route]:
    runner = BenchRunner()
    console.on_close(runner.close)
    root = console.options.bench_root()

    def folder(name: str) -> Path:
        if not _NAME.match(name) or not (root / name / "results.json").is_file():
            raise Refused(404, f"no bench result folder {name[:60]!r} under {root}")
        return root / name

    async def index(request: Request, session: Session) -> Response:
        return console.render(
            request,
            "bench.html",
            runs=folders(root),
            root=root,
            job=runner.job,
            models=console.gw.models(),
            limits={"requests": MAX_REQUESTS, "duration": MAX_DURATION_S, "output": MAX_OUTPUT_TOKENS},
        )

    async def report(request: Request, session: Session) -> Response:
        d = folder(request.path_params["name"])
        found = _load(d)
        if found is None:
            raise Refused(422, f"{d.name}/results.json is not a wave bench result this version reads")
        return console.render(
            request,
            "bench_report.html",
            name=d.name,
            report=found,
            plots=[p for p in PLOTS if (d / p).is_file()],
        )

    async def plot(request: Request, session: Session) -> Response:
        d = folder(request.path_params["name"])
        file = request.path_params["file"]
        if file not in PLOTS or not (d / file).is_file():
            raise Refused(404, "no such plot")
        return FileResponse(d / file, media_type="image/png")

    async def start(request: Request, session: Session) -> Response:
        form = request.state.form
        if not console.options.bootstrap_key and console.security.auth_enabled:
            raise Refused(409, "no key to run a bench with")
        try:
            levels = tuple(int(c) for c in str(form.get("concurrency", "1")).replace(" ", "").split(",") if c)
            spec = BenchSpec(
                url=f"{request.url.scheme}://{request.url.netloc}",
                model=str(form.get("model", "")),
                api_key=console.options.bootstrap_key.reveal() if console.options.bootstrap_key else None,
                concurrency=levels,
                requests=int(form.get("requests", 10)),
                duration_s=float(form.get("duration", 20)),
                input_tokens=int(form.get("input_tokens", 64)),
                output_tokens=int(form.get("output_tokens", 32)),
                out=root / f"console-{time.strftime('%Y%m%d-%H%M%S')}",
            )
        except ValueError:
            raise Refused(400, "concurrency, requests, seconds and tokens must be numbers") from None
        if spec.model not in console.gw.models():
            raise Refused(400, f"model {spec.model[:80]!r} is not served here")
        try:
            runner.start(spec)
        except InputError as exc:
            raise Refused(400, str(exc)) from None
        console.audit_action(session.subject, "console.bench.start", 202, spec.model)
        return RedirectResponse(f"{PATH}/bench", status_code=303)

    async def progress(request: Request, session: Session) -> Response:
        return console.render(request, "fragments/bench_progress.html", job=runner.job)

    async def stop(request: Request, session: Session) -> Response:
        if runner.job is not None:
            runner.job.stop()
            console.audit_action(session.subject, "console.bench.stop", 200, runner.job.spec.model)
        return RedirectResponse(f"{PATH}/bench", status_code=303)

    return [
        Route("/bench", console.access.page(index), methods=["GET"]),
        Route("/bench/run", console.access.page(start, role="admin"), methods=["POST"]),
        Route("/bench/progress", console.access.page(progress), methods=["GET"]),
        Route("/bench/stop", console.access.page(stop, role="admin"), methods=["POST"]),
        Route("/bench/{name}", console.access.page(report), methods=["GET"]),
        Route("/bench/{name}/{file}", console.access.page(plot), methods=["GET"]),
    ]
