"""What `wave calibrate` needs from a node that is not this one: one-thread CPU time where the
kernel has no schedstat (the stat fallback, read from this process's real /proc files), and an
illegal-instruction death (llama.cpp's AMX path on the H100 host's Xeon VM) explained in one line."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from waveidp.bench.llama_bench import LlamaBenchError, run_llama_bench, schedstat_seconds, stat_seconds


def test_stat_ticks_count_the_same_cpu_time_as_schedstat() -> None:
    # this thread only: a test worker's other threads each round their ticks down by up to 10 ms
    task = [f"/proc/{os.getpid()}/task/{threading.get_native_id()}"]
    ticks0, ns0, cpu0 = stat_seconds(task), schedstat_seconds(task), time.thread_time()
    end = cpu0 + 0.3
    while time.thread_time() < end:  # spend CPU time in this thread
        pass
    by_ticks, by_ns = stat_seconds(task) - ticks0, schedstat_seconds(task) - ns0
    assert by_ticks >= 0.28
    assert by_ticks == pytest.approx(by_ns, abs=0.03)  # 10 ms ticks
    assert by_ticks == pytest.approx(time.thread_time() - cpu0, abs=0.03)


def test_an_illegal_instruction_names_amx_and_the_build_to_use() -> None:
    die = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"
    with pytest.raises(LlamaBenchError) as caught:
        run_llama_bench([sys.executable, "-c", die, "-m", "model.gguf"])
    text = str(caught.value)
    assert "illegal instruction" in text and "AMX" in text
    assert "GGML_NATIVE=OFF" in text and "WAVE_LLAMA_BIN_DIR" in text
