"""A GPU the catalog does not list, sized from what NVML reads: checked on a GPU the catalog does list.

`record OUT` (on a machine with an NVIDIA GPU): reads the GPUs through Wave's own NVML reader
(`waveidp.fleet.detect.read_nvml_gpus`) and writes `OUT/nvml.json` (the reading, the fixture the
detection tests use), `OUT/node.yaml` (`detect_local_node`: the boards the catalog matches) and
`OUT/described.yaml` (the same boards with the catalog match off: `gpu-generic` described by NVML).

`compare [NVML_JSON...]` (anywhere; default: the H100 reading and two GeForce boards' published
nvidia-smi figures, tests/fleet/data/nvml-*.json): for each board, the described hardware against its
catalog entry (memory, bandwidth, dense peaks per dtype) and `wave size`'s prediction with both for
an 8B q4_k_m on llama.cpp at c=1 and c=8 (512-token prompts, 128 output tokens), written to
`benchmarks/results/gpu/describe/compare.{json,md}`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

RESULTS = Path(__file__).parent / "results" / "gpu" / "describe"
FIXTURES = [
    Path(__file__).parents[1] / "tests" / "fleet" / "data" / name
    for name in ("nvml-h100-sxm.json", "nvml-geforce-published.json")
]
MODEL, QUANT, ENGINE = "llama-3.1-8b", "q4_k_m", "llamacpp"
PROMPT, OUTPUT, CONCURRENCY = 512, 128, (1, 8)


def record(out: Path) -> None:
    from waveidp.fleet.detect import _gpu_devices, detect_local_node, read_nvml_gpus

    out.mkdir(parents=True, exist_ok=True)
    gpus = read_nvml_gpus()
    if not gpus:
        sys.exit("no NVIDIA GPU answered through NVML")
    (out / "nvml.json").write_text(json.dumps([asdict(g) for g in gpus], indent=2) + "\n")
    node = detect_local_node("device", probe=False)
    (out / "node.yaml").write_text(yaml.safe_dump(node.model_dump(exclude_defaults=True), sort_keys=False))
    described = [d.model_dump(exclude_defaults=True) for d in _gpu_devices(gpus, match=False)]
    (out / "described.yaml").write_text(yaml.safe_dump(described, sort_keys=False))
    print((out / "nvml.json").read_text(), (out / "described.yaml").read_text(), sep="\n")


def compare(readings: list[Path]) -> None:
    from waveidp import catalog
    from waveidp.fleet.detect import GpuInfo, _gpu_devices, match_hardware
    from waveidp.fleet.hardware import device_hardware
    from waveidp.sizing import Deployment, SizingRequest, estimate

    rows = []
    for raw in (gpu for reading in readings for gpu in json.loads(reading.read_text())):
        gpu = GpuInfo(**raw)
        entry = match_hardware("gpus", gpu.name)
        if entry is None:
            continue
        listed = catalog.hardware(entry["hardware"])
        (device,) = _gpu_devices([gpu], match=False)
        described = device_hardware(device)
        figures = {
            "memory_gib": (listed.memory_bytes / 2**30, described.memory_bytes / 2**30),
            "bandwidth_gb_s": (
                listed.memory_bandwidth_bytes_per_s / 1e9,
                described.memory_bandwidth_bytes_per_s / 1e9,
            ),
            **{
                f"{dtype}_tflops": (
                    listed.dense_flops[dtype] / 1e12,
                    described.dense_flops.get(dtype, 0) / 1e12,
                )
                for dtype in listed.dense_flops
            },
        }
        sizing = []
        for c in CONCURRENCY:
            point: dict[str, object] = {"concurrency": c}
            # without its compute capability, the description takes the generic GPU factors: what a GPU
            # of an architecture nothing measured gets
            generic = described.model_copy(update={"compute_capability": None})
            for label, hw in (
                ("catalog", listed),
                ("described", described),
                ("described_generic_factors", generic),
            ):
                d = Deployment.build(MODEL, QUANT, [hw], ENGINE)
                r = estimate(
                    SizingRequest(deployment=d, prompt_tokens=PROMPT, output_tokens=OUTPUT, concurrency=c)
                )
                p = r.performance
                point[label] = {
                    "ttft_ms": round(p.ttft_ms, 2),
                    "itl_ms": round(p.itl_ms, 3),
                    "tokens_per_s": round(p.output_tokens_per_s, 1),
                    "efficiency": str(r.efficiency.get("source", ""))[:100],
                }
            sizing.append(point)
        rows.append(
            {
                "gpu": gpu.name,
                "catalog_id": listed.id,
                "reading": raw,
                "device": device.model_dump(exclude_defaults=True),
                "figures": {
                    k: {
                        "catalog": round(v[0], 2),
                        "described": round(v[1], 2),
                        "ratio": round(v[1] / v[0], 3),
                    }
                    for k, v in figures.items()
                },
                "sizing": sizing,
            }
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": f"python benchmarks/gpu_describe.py compare {' '.join(map(_relative, readings))}",
        "request": {
            "model": MODEL,
            "quant": QUANT,
            "engine": ENGINE,
            "prompt_tokens": PROMPT,
            "output_tokens": OUTPUT,
        },
        "gpus": rows,
    }
    (RESULTS / "compare.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "compare.md").write_text(_markdown(doc))
    _plot(doc, RESULTS / "compare.png")
    print(_markdown(doc))


def _plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [row["gpu"].removeprefix("NVIDIA ") for row in doc["gpus"]]
    keys = ["memory_gib", "bandwidth_gb_s", "fp32_tflops", "fp16_tflops", "int8_tflops"]
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        ratios = [row["figures"][key]["ratio"] if key in row["figures"] else 0 for row in doc["gpus"]]
        axes[0].bar([i + k * width for i in range(len(names))], ratios, width, label=key)
    axes[0].set_title("described from NVML / catalog entry")
    metrics = [("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("tokens_per_s", "tok/s")]
    labels, values = [], []
    for row in doc["gpus"]:
        for point in row["sizing"]:
            for key, short in metrics:
                labels.append(f"{row['catalog_id']} c={point['concurrency']} {short}")
                values.append(point["described"][key] / point["catalog"][key])
    axes[1].barh(labels, values, color="tab:blue")
    axes[1].set_title(f"{MODEL} {QUANT} ({ENGINE}): described / catalog prediction")
    for ax in axes:
        ax.axvline(1.0, color="grey", lw=0.8) if ax is axes[1] else ax.axhline(1.0, color="grey", lw=0.8)
    axes[0].set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, fontsize=8)
    axes[0].set_ylim(0.9, 1.1)
    axes[0].legend(fontsize=7)
    axes[1].set_xlim(0.9, 1.1)
    axes[1].tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _relative(path: Path) -> str:
    root = Path(__file__).resolve().parents[1]
    return str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path)


def _markdown(doc: dict[str, Any]) -> str:
    lines = [f"`{doc['command']}`", ""]
    for row in doc["gpus"]:
        lines += [
            f"## {row['gpu']}: described by NVML vs the catalog's `{row['catalog_id']}`",
            "",
            "| figure | catalog | described | ratio |",
            "|---|---|---|---|",
            *(
                f"| {k} | {v['catalog']:g} | {v['described']:g} | {v['ratio']:.3f} |"
                for k, v in row["figures"].items()
            ),
            "",
            f"{MODEL} {QUANT} on {ENGINE}, {PROMPT}-token prompts, {OUTPUT} out:",
            "",
            "| c | sized as | TTFT ms | ITL ms | tok/s | vs catalog (TTFT / ITL / tok/s) |",
            "|---|---|---|---|---|---|",
        ]
        for point in row["sizing"]:
            base = point["catalog"]
            for label in ("catalog", "described", "described_generic_factors"):
                p = point[label]
                vs = " / ".join(f"{p[k] / base[k] - 1:+.1%}" for k in ("ttft_ms", "itl_ms", "tokens_per_s"))
                lines.append(
                    f"| {point['concurrency']} | {label} | {p['ttft_ms']:.1f} | {p['itl_ms']:.2f} | "
                    f"{p['tokens_per_s']:.0f} | {vs} |"
                )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"]:
        record(Path(sys.argv[2]))
    else:
        compare([Path(a) for a in sys.argv[2:]] or FIXTURES)
