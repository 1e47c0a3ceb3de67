"""What vLLM's scheduler makes of `vllm bench serve`'s closed loop, against the RTX 4090 page.

The RTX 4090 page (mushfiqrahman.dev/?p=1668; out of the validation set since its answers turned out to
end at EOS, docs/sizing.md "Sources looked at and not taken": Mistral-7B bf16, 256 prompt tokens, at
most 128 out, 300 prompts at an unbounded rate under a cap of c in flight) gives median, mean and P99
TTFT per c. This replays that run on a virtual clock: c clients start together; each sends its next
request when its last one ends (the bench's semaphore), until 300 are sent; vLLM's engine steps through
them with its V1 scheduler as `waveidp.sizing` models it (`plan_step` under the GPU's token budget,
`step_seconds` from `PerfModel`). What the page does not publish is how long each answer is: its own
figures (output tok/s over req/s) say 100 tokens on average of at most 128, so answers end at EOS (no
--ignore-eos). The script therefore runs several output-length assumptions that all have that mean, plus
fixed 128, and the prefill at the model's cost and at the cost the page's P99s imply (each P99 is the
last group of the first burst: 1, 1, 2, 4 and 6 budget steps for c = 4-48). A last what-if caps the
running requests at 40, below vLLM's default of 256 and below the ~157 requests the 4090's KV cache
holds: the page's own Little's-law figure (req/s x mean TTFT = clients waiting for a first token: 7.9 of
48 at c=48) is what such a cap would give. `in TTFT` is that figure for each run.

    .venv/bin/python benchmarks/investigations/vllm/closed_loop.py   # seconds; prints the table

writes benchmarks/results/vllm_closed_loop.json (+ .png: median TTFT per assumption vs measured).
"""

from __future__ import annotations

import heapq
import json
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from waveidp.sizing import Deployment, PerfModel, plan_step, step_seconds

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "benchmarks/results/vllm_closed_loop"
PROMPT, MAX_OUT, REQUESTS, MEAN_OUT = 256, 128, 300, 100.2
TURNAROUND_S = 0.001  # the bench's next request: same process, asyncio
SEEDS = 5
# the page's table: c -> (req/s, output tok/s, mean, median, P99 TTFT ms)
MEASURED = {
    4: (2.09, 210, 63, 53, 157),
    8: (3.78, 377, 79, 55, 268),
    16: (6.44, 644, 155, 97, 503),
    32: (9.73, 975, 362, 277, 938),
    48: (11.87, 1190, 667, 840, 1483),
}

Lengths = Callable[[random.Random], int]


def geometric(p: float) -> Lengths:
    """EOS with the same chance at every token, cut at MAX_OUT."""
    return lambda rng: min(MAX_OUT, 1 + int(rng.expovariate(p)))


def two_groups(full: float) -> Lengths:
    """A share `full` runs to MAX_OUT; the others end at a uniform point."""
    return lambda rng: MAX_OUT if rng.random() < full else rng.randint(1, MAX_OUT)


ASSUMPTIONS: dict[str, Lengths] = {
    "fixed 128 (lockstep)": lambda rng: MAX_OUT,
    "EOS at a constant rate (mean 100)": geometric(0.0040),
    "44% to 128, rest uniform (mean 100)": two_groups(0.44),
}


class Scaled:
    """`PerfModel` with each prompt token `k` times as costly inside a step."""

    def __init__(self, perf: PerfModel, k: float) -> None:
        self.perf, self.k = perf, k

    def decode_step_seconds(self, batch: int, context_tokens: int) -> float:
        return self.perf.decode_step_seconds(batch, context_tokens)

    def prefill_seconds(self, prompt_tokens: int, batch: int = 1) -> float:
        return self.perf.prefill_seconds(prompt_tokens, batch) * self.k

    def prefill_token_seconds(self, prompt_tokens: int) -> float:
        return self.perf.prefill_token_seconds(prompt_tokens) * self.k


def run(timing: Scaled, budget: int, seqs: int, c: int, lengths: Lengths, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    arrivals: list[tuple[float, int]] = [(0.0, i) for i in range(c)]
    sent = c
    waiting: list[dict[str, float]] = []
    prefilling: list[dict[str, float]] = []
    generating: list[dict[str, float]] = []
    done: list[dict[str, float]] = []
    t, order = 0.0, c
    while arrivals or waiting or prefilling or generating:
        while arrivals and arrivals[0][0] <= t:
            at, _ = heapq.heappop(arrivals)
            waiting.append({"sent": at, "left": PROMPT, "out": lengths(rng), "made": 0})
        if not (waiting or prefilling or generating):
            t = arrivals[0][0]
            continue
        room = seqs - len(generating) - len(prefilling)
        plan = plan_step(
            budget, len(generating), [r["left"] for r in prefilling], [PROMPT] * len(waiting), room
        )
        ctx = PROMPT + int(statistics.fmean(r["made"] for r in generating)) if generating else PROMPT
        t += step_seconds(timing, plan.decodes, ctx, [(k, PROMPT) for k in plan.chunks])
        for r in generating:
            r["made"] += 1
        prefilling += waiting[: plan.admitted]
        waiting = waiting[plan.admitted :]
        still = []
        for i, r in enumerate(prefilling):
            r["left"] -= plan.chunks[i] if i < len(plan.chunks) else 0
            if r["left"] > 0:
                still.append(r)
            else:
                r["first"], r["made"] = t, 1
                generating.append(r)
        prefilling = still
        for r in [r for r in generating if r["made"] >= r["out"]]:
            generating.remove(r)
            r["end"] = t
            done.append(r)
            if sent < REQUESTS:
                heapq.heappush(arrivals, (t + TURNAROUND_S, order))
                sent, order = sent + 1, order + 1
    ttft = sorted((r["first"] - r["sent"]) * 1000 for r in done)
    rate = len(done) / max(r["end"] for r in done)
    return {
        "in_ttft": rate * statistics.fmean(ttft) / 1000,
        "median": statistics.median(ttft),
        "mean": statistics.fmean(ttft),
        "p99": ttft[int(0.99 * len(ttft))],
        "tok_s": sum(r["out"] for r in done) / t,
    }


def main() -> int:
    d = Deployment.build("mistral-7b", "bf16", ["rtx-4090"], "vllm")
    perf = PerfModel(d)
    budget, seqs = d.max_num_batched_tokens, d.max_num_seqs
    # the page's P99s: a 2048-token step ~240 ms, 1024 tokens 157 ms -> ~0.108 ms per prompt token
    implied = 0.108e-3 / perf.prefill_token_seconds(PROMPT)
    rows = []
    cases = [
        (cost, k, name, seqs)
        for cost, k in (("model", 1.0), ("P99-implied", implied))
        for name in ASSUMPTIONS
    ]
    cases.append(("P99-implied", implied, "EOS at a constant rate (mean 100)", 40))
    for cost, k, name, cap in cases:
        for c in MEASURED:
            runs = [run(Scaled(perf, k), budget, cap, c, ASSUMPTIONS[name], s) for s in range(SEEDS)]
            row = {key: round(statistics.fmean(r[key] for r in runs), 1) for key in runs[0]}
            label = name if cap == seqs else f"{name}, running <= {cap}"
            rows.append({"prefill": cost, "lengths": label, "c": c, **row})
    print(f"budget {budget} tokens, max-num-seqs {seqs}; prompt-token cost x{implied:.2f} for 'P99-implied'")
    print(
        f"{'prefill':12} {'output lengths':52} {'c':>3} {'median':>7} {'mean':>7} {'p99':>7} "
        f"{'tok/s':>6} in TTFT"
    )
    for r in rows:
        m = MEASURED[int(r["c"])]
        print(
            f"{r['prefill']:12} {r['lengths']:52} {r['c']:>3} {r['median']:>7.0f} {r['mean']:>7.0f} "
            f"{r['p99']:>7.0f} {r['tok_s']:>6.0f} {r['in_ttft']:>5.1f}   page: {m[3]} / {m[2]} / {m[4]} / "
            f"{m[1]} / {m[0] * m[2] / 1000:.1f}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/investigations/vllm/closed_loop.py"
    OUT.with_suffix(".json").write_text(
        json.dumps({"command": command, "measured": MEASURED, "rows": rows}, indent=1) + "\n"
    )
    _plot(rows)
    return 0


def _plot(rows: list[dict[str, object]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    cs = list(MEASURED)
    for ax, cost in zip(axes, ("model", "P99-implied"), strict=True):
        ax.plot(cs, [MEASURED[c][3] for c in cs], "ko-", lw=2, label="page: median TTFT")
        for name in dict.fromkeys(str(r["lengths"]) for r in rows if r["prefill"] == cost):
            ys = [r["median"] for r in rows if r["prefill"] == cost and r["lengths"] == name]
            ax.plot(cs, ys, "o--", label=name)
        ax.set(title=f"prefill cost: {cost}", xlabel="clients (max concurrency)", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("median TTFT (ms)")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.suptitle("RTX 4090, Mistral-7B bf16, 256 in / <=128 out, 300 prompts: vLLM's scheduler replayed")
    fig.tight_layout()
    fig.savefig(OUT.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    sys.exit(main())
