"""`wave models quality NAME --against BASE`: what a quantization costs, by the real `llama-perplexity`.

Two runs over the same chunks of one text: the base model saves its next-token distributions
(`--kl-divergence-base FILE`), then each candidate is compared with them (`--kl-divergence`):
KL divergence per token (mean, median, 95th/99th percentile, max), how often both pick the same most
likely token ("Same top p"), the RMS change of the correct token's probability, and the perplexity
of both. llama-perplexity scores the second half of each chunk only (the first half is context).

The text is one shipped with Wave (`data/`), so every model is judged on the same tokens; a
candidate must share the base's vocabulary (the same model in another format).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from waveidp.catalog.store_manifest import QualityResult, now_iso, read_spec
from waveidp.errors import InputError, WaveError
from waveidp.models._store import PARTIAL, ModelStore, StoredModel

DATA = Path(__file__).parent / "data"
TEXTS = {"jargon": DATA / "jargon-file-4.4.7-excerpt.txt"}
DEFAULT_TEXT = "jargon"

_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_FIELDS = {
    "ppl": rf"^Mean PPL\(Q\)\s*:\s*{_NUM}",
    "ppl_base": rf"^Mean PPL\(base\)\s*:\s*{_NUM}",
    "kld_mean": rf"^Mean\s+KLD:\s*{_NUM}",
    "kld_max": rf"^Maximum KLD:\s*{_NUM}",
    "kld_p99": rf"^99\.0%\s+KLD:\s*{_NUM}",
    "kld_p95": rf"^95\.0%\s+KLD:\s*{_NUM}",
    "kld_median": rf"^Median\s+KLD:\s*{_NUM}",
    "delta_p_rms": rf"^RMS Δp\s*:\s*{_NUM}",
    "top1_agreement": rf"^Same top p:\s*{_NUM}",
}
_PERCENT = {"delta_p_rms", "top1_agreement"}
_CHUNKS = re.compile(r"computing over (\d+) chunks, n_ctx=(\d+)")
_KLD_ROW = re.compile(r"^\s*(\d+)\s+\d")
_BASE_ROW = re.compile(r"\[(\d+)\]")


class QualityError(WaveError):
    """llama-perplexity failed or printed no statistics."""


@dataclass(frozen=True)
class Settings:
    text: str = DEFAULT_TEXT
    context: int = 512
    chunks: int = 16
    threads: int = 1
    max_kld_p95: float | None = None


def text_path(name: str) -> Path:
    if name in TEXTS:
        return TEXTS[name]
    path = Path(name).expanduser()
    if path.is_file():
        return path
    raise InputError(
        f"no evaluation text {name!r}", where="--text", fix=f"use {', '.join(TEXTS)} or a path to a text file"
    )


def parse_kld_output(text: str) -> dict[str, float]:
    """The statistics block of `llama-perplexity --kl-divergence` (fractions, not percent)."""
    out: dict[str, float] = {}
    for key, pattern in _FIELDS.items():
        m = re.search(pattern, text, re.MULTILINE)
        if m is None:
            raise QualityError(f"llama-perplexity printed no '{pattern.split(chr(92))[0].lstrip('^')}' line")
        value = float(m.group(1))
        out[key] = value / 100.0 if key in _PERCENT else value
    chunks = _CHUNKS.search(text)
    if chunks:
        out["chunks"] = float(chunks.group(1))
        out["context"] = float(chunks.group(2))
    return out


@contextlib.contextmanager
def base_logits(
    store: ModelStore,
    base: StoredModel,
    settings: Settings,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Iterator[Path]:
    """Run the base once and keep its logits for the duration of the block (they are large:
    chunks x context/2 x vocabulary x 2 bytes)."""
    work = store.root / PARTIAL / f"quality-{base.name}-{time.monotonic_ns()}"
    work.mkdir(parents=True)
    try:
        logits = work / "base.logits"
        _run(
            [
                "-m",
                str(base.weights_path),
                "-f",
                str(text_path(settings.text)),
                "-c",
                str(settings.context),
                "--chunks",
                str(settings.chunks),
                "-t",
                str(settings.threads),
                "--kl-divergence-base",
                str(logits),
            ],
            f"base {base.name}",
            _BASE_ROW,
            settings.chunks,
            on_chunk,
        )
        if not logits.is_file():
            raise QualityError(f"llama-perplexity wrote no logits for {base.name}")
        yield logits
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(
    candidate: StoredModel,
    base: StoredModel,
    logits: Path,
    settings: Settings,
    on_chunk: Callable[[int, int], None] | None = None,
) -> QualityResult:
    check_comparable(candidate, base)
    args = [
        "-m",
        str(candidate.weights_path),
        "-c",
        str(settings.context),
        "-t",
        str(settings.threads),
        "--kl-divergence-base",
        str(logits),
        "--kl-divergence",
    ]
    start = time.monotonic()
    out = _run(args, f"candidate {candidate.name}", _KLD_ROW, settings.chunks, on_chunk)
    seconds = time.monotonic() - start
    stats = parse_kld_output(out)
    chunks = int(stats.pop("chunks", settings.chunks))
    context = int(stats.pop("context", settings.context))
    text = text_path(settings.text)
    accepted = None if settings.max_kld_p95 is None else stats["kld_p95"] <= settings.max_kld_p95
    return QualityResult(
        against=base.name,
        base_sha256=base.manifest.weights_sha256,
        text=settings.text if settings.text in TEXTS else text.name,
        text_sha256=hashlib.sha256(text.read_bytes()).hexdigest(),
        context=context,
        chunks=chunks,
        tokens=chunks * (context - 1 - context // 2),
        seconds=round(seconds, 2),
        measured_at=now_iso(),
        tool=(
            f"llama-perplexity -m <{candidate.name}> -c {context} -t {settings.threads} "
            f"--kl-divergence-base <{base.name} logits: {text.name}, {chunks} chunks> --kl-divergence"
        ),
        policy_max_kld_p95=settings.max_kld_p95,
        accepted=accepted,
        **stats,
    )


def check_comparable(candidate: StoredModel, base: StoredModel) -> None:
    for m in (candidate, base):
        if m.manifest.format != "gguf":
            raise InputError(
                f"{m.name} is {m.manifest.format}; llama-perplexity reads GGUF files", where="NAME"
            )
    a = read_spec(candidate.folder, candidate.manifest.weights)
    b = read_spec(base.folder, base.manifest.weights)
    if (a.architecture, a.vocab_size) != (b.architecture, b.vocab_size):
        raise InputError(
            f"{candidate.name} ({a.architecture}, vocabulary {a.vocab_size:,}) and {base.name} "
            f"({b.architecture}, vocabulary {b.vocab_size:,}) are not the same model",
            where="--against",
            fix="compare a quantization with the model it was made from",
        )


def _run(
    args: list[str],
    what: str,
    row: re.Pattern[str],
    chunks: int,
    on_chunk: Callable[[int, int], None] | None,
) -> str:
    from waveidp.engines.local_files import llama_tool

    cmd = [str(llama_tool("llama-perplexity")), *args]
    lines: list[str] = []
    total = chunks
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = _CHUNKS.search(line)
            if m:
                total = int(m.group(1))
            if on_chunk:
                done = [int(x) for x in row.findall(line)] if row is _BASE_ROW else []
                if row is not _BASE_ROW and (k := row.match(line)):
                    done = [int(k.group(1))]
                if done:
                    on_chunk(max(done), total)
        rc = proc.wait()
    text = "".join(lines)
    if rc != 0:
        errors = [ln.strip() for ln in lines if " E " in ln or re.search(r"error|failed", ln, re.I)]
        last = " | ".join((errors or [ln.strip() for ln in lines if ln.strip()])[-3:])
        raise QualityError(f"llama-perplexity ({what}) failed (exit {rc}): {last}")
    return text
