"""Run llama.cpp's `llama-bench` and read its results: prompt processing (`pp N`) and token
generation (`tg N`) rates of a model file at given thread counts.

llama-bench prints one JSON object per test as it finishes (`-o jsonl`), so a caller can show
progress. Each row keeps the best repetition (other processes only ever slow a run down) and the
exact command.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waveidp.errors import WaveError


@dataclass(frozen=True)
class BenchRow:
    """One llama-bench test: `n_prompt` prompt tokens (pp) or `n_gen` generated tokens (tg)."""

    model: Path
    threads: int
    n_prompt: int
    n_gen: int
    tokens_per_s: float  # best repetition
    mean_tokens_per_s: float
    samples: tuple[float, ...]
    command: str
    build: str = ""
    cpu_info: str = ""
    gpu_layers: int = 0  # -ngl: layers on the GPU (0: a CPU test)
    backends: str = ""  # what llama-bench ran on, e.g. "CPU", "CUDA"
    gpu_info: str = ""

    @property
    def test(self) -> str:
        return f"pp{self.n_prompt}" if self.n_prompt else f"tg{self.n_gen}"


class LlamaBenchError(WaveError):
    """llama-bench failed or printed something other than its results."""


def llama_bench_command(
    binary: Path,
    model: Path,
    *,
    threads: Sequence[int] = (),
    prompts: Sequence[int] = (),
    gens: Sequence[int] = (),
    reps: int = 2,
    extra: Sequence[str] = (),
) -> list[str]:
    join = ",".join
    cmd = [
        str(binary),
        "-m",
        str(model),
        *(["-t", join(map(str, threads))] if threads else []),
        "-r",
        str(reps),
    ]
    cmd += ["-o", "jsonl"]
    cmd += ["-p", join(map(str, prompts)) if prompts else "0", "-n", join(map(str, gens)) if gens else "0"]
    return [*cmd, *extra]


def tests_in(threads: Sequence[int], prompts: Sequence[int], gens: Sequence[int]) -> int:
    """How many result rows one llama-bench command prints (no `threads`: llama-bench's default)."""
    return max(1, len(threads)) * (len([p for p in prompts if p]) + len([g for g in gens if g]))


def run_llama_bench(
    cmd: list[str],
    *,
    timeout_s: float = 900,
    on_row: Callable[[BenchRow], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[BenchRow]:
    """Run `cmd` (from `llama_bench_command`) and return its rows, calling `on_row` as each finishes;
    `env` is added to this process's environment."""
    model = Path(cmd[cmd.index("-m") + 1])
    rows: list[BenchRow] = []
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env} if env else None,
        )
    except OSError as exc:
        raise LlamaBenchError(f"cannot start llama-bench: {exc}", where=cmd[0]) from None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = parse_row(json.loads(line), model, shlex.join(cmd))
            rows.append(row)
            if on_row is not None:
                on_row(row)
        err = proc.stderr.read() if proc.stderr else ""
        proc.wait(timeout=timeout_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-3:])
        raise LlamaBenchError(f"llama-bench exited with {proc.returncode}: {tail}", where=shlex.join(cmd))
    return rows


def parse_row(r: dict[str, Any], model: Path, command: str) -> BenchRow:
    """One result object llama-bench printed (`-o json` or `-o jsonl`) as a row."""
    samples = tuple(float(x) for x in r.get("samples_ts") or [r["avg_ts"]])
    return BenchRow(
        model=model,
        threads=int(r["n_threads"]),
        n_prompt=int(r["n_prompt"]),
        n_gen=int(r["n_gen"]),
        tokens_per_s=max(samples),
        mean_tokens_per_s=float(r["avg_ts"]),
        samples=samples,
        command=command,
        build=f"{r.get('build_commit', '')} ({r.get('build_number', '')})",
        cpu_info=str(r.get("cpu_info", "")),
        gpu_layers=max(0, int(r.get("n_gpu_layers", 0))),
        backends=str(r.get("backends", "")),
        gpu_info=str(r.get("gpu_info", "")),
    )


def list_devices(binary: Path, *, env: Mapping[str, str] | None = None) -> list[str]:
    """The devices a llama-bench build can run on, as it names them (`CUDA0: NVIDIA H100 80GB HBM3
    (81000 MiB, 80000 MiB free)`); empty for a CPU-only build."""
    try:
        done = subprocess.run(
            [str(binary), "--list-devices"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env} if env else None,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LlamaBenchError(f"cannot run llama-bench --list-devices: {exc}", where=str(binary)) from None
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise LlamaBenchError(
            f"llama-bench --list-devices exited with {done.returncode}: {tail}", where=str(binary)
        )
    lines = [x.strip() for x in done.stdout.splitlines()]
    return [x for x in lines if ":" in x and not x.startswith("Available devices")]


def run_cpu_timed(
    binary: Path,
    model: Path,
    *,
    n_prompt: int = 0,
    n_gen: int = 0,
    reps: int = 3,
    min_cpu_s: float = 2.0,
    timeout_s: float = 900,
) -> BenchRow:
    """One single-thread test timed by the CPU time llama-bench spends on it, not the wall clock.

    On a machine other processes share, a one-thread run's wall time includes the slices the
    scheduler gives to others; its CPU time does not. llama-bench loads the model, runs the test
    once to warm up and then `-r` times, so two runs (`-r 1` and `-r 1+k`) differ by exactly `k`
    repetitions: their CPU-time difference over `k` is one repetition's own time. `k` is at least
    `reps` and large enough for about `min_cpu_s` of difference (loading a model costs a varying
    second of CPU, which a short test's few repetitions would not outweigh). The row's `samples`
    keep the wall-clock rates of the longer run.
    """
    if (n_prompt > 0) == (n_gen > 0):
        raise ValueError("one test: either n_prompt or n_gen")
    cpu: list[float] = []
    rows: list[BenchRow] = []
    extra = reps
    for first in (True, False):
        cmd = llama_bench_command(
            binary,
            model,
            threads=[1],
            prompts=[n_prompt] if n_prompt else [],
            gens=[n_gen] if n_gen else [],
            reps=1 if first else 1 + extra,
        )
        used, out = _cpu_seconds(cmd, timeout_s)
        cpu.append(used)
        rows += [
            parse_row(json.loads(x), model, shlex.join(cmd)) for x in out.splitlines() if x.startswith("{")
        ]
        if first and rows:  # the wall-clock rate overstates a repetition's time: enough repetitions
            one_rep_s = (n_prompt or n_gen) / rows[0].tokens_per_s
            extra = max(reps, min(200, math.ceil(min_cpu_s / one_rep_s)))
    if len(rows) != 2:
        raise LlamaBenchError(
            "llama-bench printed no result", where=rows[-1].command if rows else str(binary)
        )
    own = (cpu[1] - cpu[0]) / extra
    if own <= 0:
        raise LlamaBenchError(
            "llama-bench's CPU time did not grow with its repetitions", where=rows[-1].command
        )
    wall = rows[-1]
    rate = (n_prompt or n_gen) / own
    return BenchRow(
        model=model,
        threads=1,
        n_prompt=n_prompt,
        n_gen=n_gen if not n_prompt else 0,
        tokens_per_s=rate,
        mean_tokens_per_s=rate,
        samples=wall.samples,
        command=f"{rows[0].command} ; {wall.command}  (CPU-time difference / {extra})",
        build=wall.build,
        cpu_info=wall.cpu_info,
    )


def _cpu_seconds(cmd: list[str], timeout_s: float) -> tuple[float, str]:
    """Run `cmd`; (user + system CPU seconds of the process and its threads, its stdout)."""
    import tempfile
    import time

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        except OSError as exc:
            raise LlamaBenchError(f"cannot start llama-bench: {exc}", where=cmd[0]) from None
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise LlamaBenchError(f"llama-bench ran past {timeout_s:g} s", where=shlex.join(cmd))
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = " | ".join(err.read().strip().splitlines()[-3:])
            raise LlamaBenchError(f"llama-bench exited with {proc.returncode}: {tail}", where=shlex.join(cmd))
        out.seek(0)
        return usage.ru_utime + usage.ru_stime, out.read()
