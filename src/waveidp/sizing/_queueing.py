"""Served figures of `concurrency` closed-loop clients: the engine's scheduler simulated
(`_schedule`: llama-server's loop, or vLLM's `PagedLoop`), a closed form for the other engines.
`estimate`, `wave bench --predict` and `wave calibrate` use it."""

from __future__ import annotations

from waveidp.errors import InputError
from waveidp.sizing._request import ARRIVALS, Arrival
from waveidp.sizing._result import CurvePoint
from waveidp.sizing._roofline import PerfModel
from waveidp.sizing._schedule import ROUNDS, ClosedLoop, simulate, simulates


def steady_state_point(
    perf: PerfModel,
    concurrency: int,
    prompt_tokens: int,
    output_tokens: int,
    arrival: Arrival = "burst",
    load: ClosedLoop | None = None,
) -> CurvePoint:
    """`concurrency` closed-loop clients sending equal requests (docs/sizing.md, "Concurrency:
    queueing before the first token"), arriving in one of two patterns:

    - "burst": the c clients start together (what `wave bench -c` measures without --ramp).
    - "steady": starts spread over a request's duration (`wave bench --ramp ~one request
      --point-warmup c`, and what a service sees from many independent users).

    llama.cpp and vLLM runs are simulated (`_schedule`): `ROUNDS` requests per client, or exactly
    the run `load` describes (what `wave bench` recorded). Other engines use the closed form below.
    """
    if arrival not in ARRIVALS:
        raise InputError(f"arrival must be one of {', '.join(ARRIVALS)}, not {arrival!r}", where="arrival")
    c, prompt, output = concurrency, prompt_tokens, output_tokens
    if simulates(perf):
        sim = simulate(perf, load or _default_run(perf, c, prompt, output, arrival))
        # a replayed burst reports what wave bench measured (its tokens over its window, edges
        # included); otherwise the rate the closed loop sustains (Little's law)
        rate = sim.window_tokens_per_s if load and arrival == "burst" else sim.output_tokens_per_s
        return CurvePoint(
            concurrency=c,
            ttft_ms=round(sim.ttft_s * 1000, 3),
            itl_ms=round(sim.itl_s * 1000, 3),
            output_tokens_per_s=round(rate, 3),
        )
    return _closed_form(perf, c, prompt, output, arrival)


def idle_ttft_seconds(perf: PerfModel, prompt_tokens: int) -> float:
    """One request on an idle server: from its arrival to its first token at the client, by the
    engine's scheduler model (`_schedule`): llama-server's launch window and prompt batches, or
    vLLM's chunked prompt in `max_num_batched_tokens` steps, then `first_token_s`; what `wave size`
    and `wave emulate` give such a request. The gateway router's prior reads it."""
    if simulates(perf):
        return simulate(perf, ClosedLoop(1, max(1, prompt_tokens), 1, requests=1)).ttft_s
    return perf.prefill_seconds(prompt_tokens) + perf.first_token_seconds()


def _default_run(perf: PerfModel, c: int, prompt: int, output: int, arrival: Arrival) -> ClosedLoop:
    if arrival == "burst":
        return ClosedLoop(c, prompt, output, requests=ROUNDS * c)
    # steady: starts spread over one request's duration, the first round not measured
    one = _closed_form(perf, c, prompt, output, arrival)
    ramp = (one.ttft_ms + (output - 1) * one.itl_ms) / 1000
    return ClosedLoop(c, prompt, output, requests=(ROUNDS + 1) * c, ramp_s=ramp, skip=c)


def _closed_form(perf: PerfModel, c: int, prompt: int, output: int, arrival: Arrival) -> CurvePoint:
    """The figures of engines without a scheduler loop here, and the length of one request that
    spreads a steady run's starts.
    Burst: each round the engine gets all c prompts at once and prefills them first come, first
    served, batched with the decode steps of the requests already running: the median request waits
    for the step in flight, then for the prompts of half of the others, then for its own; the other
    half interrupt its decode. Steady: a new prompt arrives while the others decode, waits for the
    step in flight and is prefilled in the next one; every other client's prompt interrupts its
    decode once per round. Both add `first_token_s`."""
    prefill = perf.prefill_seconds(prompt)
    # one more prompt in a batched prefill costs its compute, not another pass over the weights
    extra_prompt = max(0.0, perf.prefill_seconds(prompt, batch=2) - prefill)
    step = perf.decode_step_seconds(c, prompt + output // 2)
    first = perf.first_token_seconds()
    if arrival == "burst":
        ahead = (c - 1) / 2
        ttft = prefill + ahead * extra_prompt + (step if c > 1 else 0.0) + first
        itl = step + (c - 1 - ahead) * extra_prompt / max(1, output - 1)
    else:
        itl = step + (c - 1) * extra_prompt / max(1, output - 1)
        ttft = prefill + (itl if c > 1 else 0.0) + first
    e2e = ttft + (output - 1) * itl
    return CurvePoint(
        concurrency=c,
        ttft_ms=round(ttft * 1000, 3),
        itl_ms=round(itl * 1000, 3),
        output_tokens_per_s=round(c * output / e2e, 3),
    )
