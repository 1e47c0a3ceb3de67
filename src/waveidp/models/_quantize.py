"""`wave models quantize NAME --to Q4_K_M[,Q8_0,...]`: new GGUF files made by the real `llama-quantize`.

Each result is a model of its own in the store (`<base>-<type>`), whose manifest names the base, the
base's sha256 and the exact command, so `wave models quality` knows what to compare it against and
`wave fit` can choose among the formats of one model.

Quantizing an already quantized file needs `--allow-requantize`: the result carries the first
quantization's error as well as its own (llama.cpp warns that quality suffers). Wave passes it only
when the base is not a float file, and says so.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from waveidp.catalog.store_manifest import Source, StoredFile
from waveidp.errors import InputError, WaveError
from waveidp.models._describe import describe
from waveidp.models._store import ModelStore, StoredModel, check_name, ensure_space, sha256_file

# llama-quantize's type names (the ones `llama-quantize --help` lists that produce a whole-model file),
# with the bits per weight used to check disk space before a run.
TYPES: dict[str, float] = {
    "F32": 32.0,
    "F16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_K_M": 5.69,
    "Q5_K_S": 5.54,
    "Q5_0": 5.5,
    "Q5_1": 6.0,
    "Q4_K_M": 4.89,
    "Q4_K_S": 4.58,
    "Q4_0": 4.5,
    "Q4_1": 5.0,
    "IQ4_NL": 4.5,
    "IQ4_XS": 4.25,
    "Q3_K_L": 4.27,
    "Q3_K_M": 3.91,
    "Q3_K_S": 3.5,
    "Q2_K": 2.96,
}
FLOAT_QUANTS = {"f32", "f16", "bf16"}
_STEP = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]")


class QuantizeError(WaveError):
    """llama-quantize failed; the message carries the tool's last lines."""


def parse_types(text: str) -> list[str]:
    out = []
    for raw in text.split(","):
        t = raw.strip().upper()
        if not t:
            continue
        if t not in TYPES:
            import difflib

            close = difflib.get_close_matches(t, TYPES, n=3)
            raise InputError(
                f"unknown quantization type {raw.strip()!r}",
                where="--to",
                fix=f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(TYPES)}",
            )
        out.append(t)
    if not out:
        raise InputError("no quantization type given", where="--to", fix="e.g. --to Q4_K_M,Q8_0")
    return out


def output_name(base: StoredModel, qtype: str) -> str:
    """`smollm2-135m-instruct-f16` + Q4_K_M -> `smollm2-135m-instruct-q4_k_m`."""
    return check_name(f"{base.stem}-{qtype.lower()}")


def quantize(
    store: ModelStore,
    base_name: str,
    qtype: str,
    *,
    name: str | None = None,
    threads: int = 1,
    imatrix: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> StoredModel:
    from waveidp.engines.local_files import llama_tool

    base = store.get(base_name)
    if base.manifest.format != "gguf":
        raise InputError(
            f"{base_name} is {base.manifest.format}, not GGUF",
            where="NAME",
            fix="llama-quantize reads GGUF files; convert with llama.cpp's convert_hf_to_gguf.py first",
        )
    if imatrix is not None and not imatrix.is_file():
        raise InputError(f"imatrix file {imatrix} does not exist", where="--imatrix")
    out_name = name or output_name(base, qtype)
    staging = store.staging(out_name)
    out_file = staging / f"{out_name}.gguf"
    base_bytes = base.weights_path.stat().st_size
    bpw_in = _file_bpw(base.manifest.quant)
    ensure_space(staging, int(base_bytes * TYPES[qtype] / bpw_in * 1.1) + (1 << 20), f"{out_name}.gguf")
    cmd = [str(llama_tool("llama-quantize"))]
    if (base.manifest.quant or "").lower() not in FLOAT_QUANTS:
        cmd.append("--allow-requantize")
    if imatrix is not None:
        cmd += ["--imatrix", str(imatrix)]
    cmd += [str(base.weights_path), str(out_file), qtype, str(threads)]
    tail: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-11:], line.rstrip()]
            m = _STEP.match(line)
            if m and on_step:
                on_step(int(m.group(1)), int(m.group(2)))
        rc = proc.wait()
    if rc != 0 or not out_file.is_file():
        out_file.unlink(missing_ok=True)
        last = " | ".join(t for t in tail[-4:] if t.strip())
        raise QuantizeError(f"llama-quantize {qtype} of {base_name} failed (exit {rc}): {last}")
    stored = [StoredFile(path=out_file.name, sha256=sha256_file(out_file), size=out_file.stat().st_size)]
    shown = ["llama-quantize", *cmd[1:]]
    shown[-4:-2] = [f"<{base_name}>/{base.manifest.weights}", out_file.name]
    if imatrix is not None:
        shown[shown.index("--imatrix") + 1] = imatrix.name
    source = Source(
        kind="quantize",
        uri=f"{base_name} -> {qtype}",
        base=base_name,
        base_sha256=base.manifest.weights_sha256,
        command=shown,
    )
    manifest = describe(staging, stored, name=out_name, source=source, license=base.manifest.license)
    return store.commit(staging, manifest)


def _file_bpw(quant: str | None) -> float:
    q = (quant or "").upper()
    return TYPES.get(q, 4.5)
