"""Sizing explorer: a model (catalog id, or a local GGUF / config.json path), a weight format, a
device set, an engine, context and concurrency -> memory per device, the verdict with its reasons,
and TTFT / ITL / throughput against concurrency (`wave size`); and what fits where on the fleet
(`wave fit`). A GET form, so a sizing can be linked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from waveidp import catalog
from waveidp.console.charts import Chart
from waveidp.console.sessions import Session
from waveidp.errors import WaveError
from waveidp.sizing import ENGINES, Deployment, SizingRequest, SizingResult, estimate

if TYPE_CHECKING:
    from waveidp.console.app import Console


@dataclass(frozen=True)
class SizingForm:
    model: str = "llama-3.1-8b"
    quant: str = ""
    devices: tuple[str, ...] = ("rtx-5070-ti",)
    engine: str = ""
    context: int = 4096
    concurrency: int = 4
    prompt_tokens: int = 512
    output_tokens: int = 256
    tp: int = 1

    @classmethod
    def from_query(cls, q: Any) -> SizingForm:
        def num(name: str, default: int) -> int:
            raw = q.get(name, "")
            return int(raw) if raw.isdigit() else default

        return cls(
            model=(q.get("model") or cls.model).strip()[:300],
            quant=(q.get("quant") or "").strip()[:40],
            devices=tuple(d for d in q.getlist("device") if d) or cls.devices,
            engine=(q.get("engine") or "").strip()[:40],
            context=num("context", cls.context),
            concurrency=num("concurrency", cls.concurrency),
            prompt_tokens=num("prompt_tokens", cls.prompt_tokens),
            output_tokens=num("output_tokens", cls.output_tokens),
            tp=num("tp", cls.tp),
        )


def size(form: SizingForm) -> SizingResult:
    d = Deployment.build(
        form.model,
        form.quant or None,
        list(form.devices),
        form.engine or None,
        tp=form.tp,
        context=form.context,
    )
    return estimate(
        SizingRequest(
            deployment=d,
            prompt_tokens=form.prompt_tokens,
            output_tokens=form.output_tokens,
            concurrency=form.concurrency,
        )
    )


def curve_charts(r: SizingResult) -> list[dict[str, Any]]:
    xs = [float(p.concurrency) for p in r.curve]
    charts = [
        Chart("TTFT vs concurrency", xs, time_x=False, x_label="concurrency", y_label="ms").add(
            "TTFT", [p.ttft_ms for p in r.curve], unit="ms"
        ),
        Chart("ITL vs concurrency", xs, time_x=False, x_label="concurrency", y_label="ms").add(
            "ITL", [p.itl_ms for p in r.curve], unit="ms"
        ),
        Chart(
            "Output throughput vs concurrency", xs, time_x=False, x_label="concurrency", y_label="tok/s"
        ).add("tokens/s", [p.output_tokens_per_s for p in r.curve], unit="tok/s"),
    ]
    return [c.to_dict() for c in charts]


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        return f"{where}: {err['msg']}"
    return str(exc)


def routes(console: Console) -> list[Route]:
    async def page(request: Request, session: Session) -> Response:
        form = SizingForm.from_query(request.query_params)
        result = error = None
        charts: list[dict[str, Any]] = []
        if request.query_params.get("model"):
            try:
                result = await asyncio.to_thread(size, form)
                charts = curve_charts(result)
            except (WaveError, ValidationError, ValueError) as exc:
                error = _problem(exc)
        fit_model = request.query_params.get("fit_model", "")
        fit_rows = fit_error = None
        if fit_model:
            try:
                fit_rows = await asyncio.to_thread(fit, console, fit_model, form.context)
            except (WaveError, ValidationError, ValueError) as exc:
                fit_error = _problem(exc)
        return console.render(
            request,
            "sizing.html",
            form=form,
            result=result,
            error=error,
            charts=charts,
            models=sorted(catalog.all_models()),
            quants=sorted(catalog.all_quants()),
            hardware=sorted(catalog.all_hardware()),
            engines=list(ENGINES),
            fit_model=fit_model,
            fit_rows=fit_rows,
            fit_error=fit_error,
            fleet_name=console.options.fleet.name if console.options.fleet else "this machine (detected)",
        )

    return [Route("/sizing", console.access.page(page), methods=["GET"])]


def fit(console: Console, model: str, context: int) -> list[Any]:
    from waveidp.sizing._fit import fit_fleet

    if console.options.fleet is not None:
        nodes = list(console.options.fleet.nodes)
    else:
        from waveidp.fleet.detect import detect_local_node

        nodes = [detect_local_node()]
    from waveidp.fleet import device_hardware

    return fit_fleet(nodes, [catalog.model(model)], context=context, hardware_of=device_hardware)
