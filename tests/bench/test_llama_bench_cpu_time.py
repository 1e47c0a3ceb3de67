"""One-thread llama-bench tests timed by each repetition's CPU time (`run_cpu_timed`), on the real
llama-bench and SmolLM2."""

from __future__ import annotations

from pathlib import Path

import pytest

from waveidp.bench.llama_bench import run_cpu_timed
from waveidp.engines.local_files import llama_tool

pytestmark = pytest.mark.engine


def test_cpu_time_covers_one_repetition_each(smollm2_path: Path) -> None:
    row = run_cpu_timed(llama_tool("llama-bench"), smollm2_path, n_gen=8, reps=2)
    assert (row.threads, row.n_gen, row.n_prompt, row.test) == (1, 8, 0, "tg8")
    assert "--progress" in row.command and "median of 2" in row.command
    # one thread cannot spend more CPU time than wall time on a repetition: the rate by CPU time is
    # at least the wall clock's (the old whole-run difference, skewed by the model's varying load
    # cost, reported short tests at up to 3x their wall rate or below it)
    assert row.tokens_per_s >= 0.9 * sorted(row.samples)[len(row.samples) // 2]
    # the repetitions' CPU times agree with each other (the median is not an outlier)
    assert row.mean_tokens_per_s == pytest.approx(row.tokens_per_s, rel=0.3)


def test_one_test_per_call(smollm2_path: Path) -> None:
    with pytest.raises(ValueError, match="either n_prompt or n_gen"):
        run_cpu_timed(llama_tool("llama-bench"), smollm2_path, n_prompt=8, n_gen=8)
