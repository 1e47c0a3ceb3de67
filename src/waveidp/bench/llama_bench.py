"""Run llama.cpp's `llama-bench` and read its results: prompt processing (`pp N`) and token
generation (`tg N`) rates of a model file at given thread counts.

llama-bench prints one JSON object per test as it finishes (`-o jsonl`), so a caller can show
progress. Each row keeps the best repetition (other processes only ever slow a run down) and the
exact command.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shlex
import signal
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
        raise _exit_error(proc.returncode, tail, cmd)
    return rows


def _exit_error(returncode: int, tail: str, cmd: list[str]) -> LlamaBenchError:
    """The error for llama-bench ending with `returncode`; an illegal instruction says why it happens."""
    if returncode == -signal.SIGILL:
        return LlamaBenchError(
            "llama-bench died of an illegal instruction: this llama.cpp build runs an instruction this "
            "machine refuses, typically its AMX path (q4_0/q4_1/q8_0/k-quant files) on a VM that reports "
            "the amx flags (the H100 host's Xeon VM: the kernel grants the tile state, llama.cpp's AMX "
            "kernels still die) or on a kernel older than 5.16",
            where=shlex.join(cmd),
            fix="use a llama.cpp built without AMX (cmake -DGGML_NATIVE=OFF -DGGML_AVX512=ON "
            "-DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON) through WAVE_LLAMA_BIN_DIR",
        )
    return LlamaBenchError(f"llama-bench exited with {returncode}: {tail}", where=shlex.join(cmd))


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
    timeout_s: float = 900,
) -> BenchRow:
    """One single-thread test timed by the CPU time llama-bench spends on each repetition, not the
    wall clock.

    On a machine other processes share, a one-thread run's wall time includes the slices the
    scheduler gives to others; its CPU time does not. llama-bench (`--progress`) announces each
    repetition on stderr as it starts; at each announcement the process's CPU time so far is read
    (`/proc/PID/task/*/schedstat`, nanoseconds), so the difference between two announcements is one
    repetition's own CPU time, without the model's loading (whose CPU time varies by a second or
    more with the page cache, which is why the difference of two whole runs is no measure of a short
    test). `reps + 1` repetitions run; the rate is the tokens over the median repetition's CPU time.
    The row's `samples` keep llama-bench's wall-clock rates.
    """
    if (n_prompt > 0) == (n_gen > 0):
        raise ValueError("one test: either n_prompt or n_gen")
    cmd = llama_bench_command(
        binary,
        model,
        threads=[1],
        prompts=[n_prompt] if n_prompt else [],
        gens=[n_gen] if n_gen else [],
        reps=max(2, reps) + 1,
        extra=["--progress"],
    )
    stamps, out = _cpu_at_each_repetition(cmd, timeout_s)
    rows = [parse_row(json.loads(x), model, shlex.join(cmd)) for x in out.splitlines() if x.startswith("{")]
    own = sorted(b - a for a, b in itertools.pairwise(stamps))
    if len(rows) != 1 or not own:
        raise LlamaBenchError("llama-bench printed no result", where=shlex.join(cmd))
    median = own[len(own) // 2] if len(own) % 2 else (own[len(own) // 2 - 1] + own[len(own) // 2]) / 2
    if median <= 0:
        raise LlamaBenchError("llama-bench used no CPU time in its repetitions", where=shlex.join(cmd))
    wall = rows[0]
    rate = (n_prompt or n_gen) / median
    return BenchRow(
        model=model,
        threads=1,
        n_prompt=n_prompt,
        n_gen=n_gen if not n_prompt else 0,
        tokens_per_s=rate,
        mean_tokens_per_s=(n_prompt or n_gen) * len(own) / sum(own),
        samples=wall.samples,
        command=f"{shlex.join(cmd)}  (CPU time of each repetition, median of {len(own)})",
        build=wall.build,
        cpu_info=wall.cpu_info,
    )


def _process_cpu_seconds(pid: int) -> float:
    """CPU seconds the threads of `pid` have run so far: nanosecond `schedstat`, else (a kernel
    without schedstats) user + system clock ticks from `stat`; NaN once it ended."""
    try:
        tasks = [t.path for t in os.scandir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return math.nan
    if not tasks:
        return math.nan
    if os.path.exists(f"{tasks[0]}/schedstat"):
        return schedstat_seconds(tasks)
    return stat_seconds(tasks)


def schedstat_seconds(tasks: Sequence[str]) -> float:
    """CPU seconds of the `/proc/PID/task/TID` folders `tasks`, from their schedstat (nanoseconds)."""
    return sum(_read_or_zero(f"{t}/schedstat", lambda s: int(s.split()[0]) / 1e9) for t in tasks)


def stat_seconds(tasks: Sequence[str]) -> float:
    """The same from their `stat` (user + system clock ticks: 10 ms steps)."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum(_read_or_zero(f"{t}/stat", lambda s: _stat_ticks(s) / tick) for t in tasks)


def _stat_ticks(stat: str) -> int:
    # utime and stime are fields 14 and 15; the command name (field 2) may hold spaces, so count
    # from its closing parenthesis
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _read_or_zero(path: str, parse: Callable[[str], float]) -> float:
    try:
        with open(path) as f:
            return parse(f.read())
    except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
        return 0.0


def _cpu_at_each_repetition(cmd: list[str], timeout_s: float) -> tuple[list[float], str]:
    """Run `cmd` (with `--progress`); the process's CPU seconds as each timed repetition starts, and
    its stdout."""
    import tempfile
    import threading

    stamps: list[float] = []
    with tempfile.TemporaryFile("w+") as out:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, bufsize=1)
        except OSError as exc:
            raise LlamaBenchError(f"cannot start llama-bench: {exc}", where=cmd[0]) from None
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        err: list[str] = []
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                # "llama-bench: benchmark 1/1: prompt run 2/4" (the warm-up run says "warmup")
                if " run " in line and "warmup" not in line:
                    stamps.append(_process_cpu_seconds(proc.pid))
                err.append(line)
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            tail = " | ".join(x.strip() for x in err[-3:])
            if proc.returncode == -9:
                raise LlamaBenchError(f"llama-bench ran past {timeout_s:g} s: {tail}", where=shlex.join(cmd))
            raise _exit_error(proc.returncode, tail, cmd)
        out.seek(0)
        return [s for s in stamps if not math.isnan(s)], out.read()
