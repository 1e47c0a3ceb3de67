"""`wave exporter` on a machine with a real NVIDIA GPU: what it reads, idle and under load, against
nvidia-smi read at the same moments, and how long each scrape takes.

Starts the real CLI (`python3 -m waveidp exporter`), scrapes /metrics while the GPU is idle, while a
PyTorch bf16 matrix-product loop holds it busy (and holds a block of its memory), and after; reads
nvidia-smi's figures beside every scrape; runs the bench's Telemetry (the same collector) over the
load. Writes to OUTDIR: summary.json (per scrape: latency, the DCGM-named values and nvidia-smi's),
idle.prom / load.prom (one full exposition each), exporter.log, and exporter_vs_smi.png (also made
later from a summary with --plot-only).

    python3 benchmarks/exporter_device.py OUTDIR [--load-s 24] [--hold-gib 16]
    python3 benchmarks/exporter_device.py OUTDIR --plot-only     # OUTDIR/summary.json -> the PNG
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from waveidp.loopback import free_port

FIELDS = {
    "DCGM_FI_DEV_FB_USED": "memory.used",
    "DCGM_FI_DEV_FB_FREE": "memory.free",
    "DCGM_FI_DEV_GPU_UTIL": "utilization.gpu",
    "DCGM_FI_DEV_MEM_COPY_UTIL": "utilization.memory",
    "DCGM_FI_DEV_POWER_USAGE": "power.draw",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": "enforced.power.limit",
    "DCGM_FI_DEV_GPU_TEMP": "temperature.gpu",
    "DCGM_FI_DEV_MEMORY_TEMP": "temperature.memory",
    "DCGM_FI_DEV_SM_CLOCK": "clocks.sm",
    "DCGM_FI_DEV_MEM_CLOCK": "clocks.mem",
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": "clocks_event_reasons.active",
}
EXTRA = (
    "DCGM_FI_DEV_FB_RESERVED",
    "DCGM_FI_DEV_FB_TOTAL",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_ENC_UTIL",
    "DCGM_FI_DEV_DEC_UTIL",
)

LOAD = """
import sys, time, torch
seconds, hold_gib = float(sys.argv[1]), float(sys.argv[2])
hold = torch.empty(int(hold_gib * 2**30), dtype=torch.uint8, device="cuda").random_(0, 255)
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
print("load: holding", hold_gib, "GiB, matmuls for", seconds, "s", flush=True)
end = time.time() + seconds
n = 0
while time.time() < end:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
    n += 20
print(f"load: {n} products, {n * 2 * 8192**3 / seconds / 1e12:.0f} TFLOP/s", flush=True)
"""


def _smi() -> dict[str, float | str]:
    q = ",".join(FIELDS.values())
    try:
        r = subprocess.run(
            ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return {}
    values = [v.strip() for v in r.stdout.strip().splitlines()[0].split(",")] if r.returncode == 0 else []
    out: dict[str, float | str] = {}
    for key, v in zip(FIELDS.values(), values, strict=False):
        try:
            out[key] = int(v, 16) if v.startswith("0x") else float(v)
        except ValueError:
            out[key] = v
    return out


def _scrape(url: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return text, (time.perf_counter() - t0) * 1000


def _gpu_values(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("DCGM_") and s.labels.get("gpu") == "0":
                out[s.name] = s.value
    return out


def _labels(text: str) -> dict[str, str]:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "DCGM_FI_DEV_FB_USED":
                return dict(s.labels)
    return {}


def plot(summary: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads(summary.read_text())
    rows = doc["scrapes"]
    t = [r["t_s"] for r in rows]
    panels = (
        ("memory used (MiB)", "DCGM_FI_DEV_FB_USED", "memory.used"),
        ("GPU utilization (%)", "DCGM_FI_DEV_GPU_UTIL", "utilization.gpu"),
        ("power (W)", "DCGM_FI_DEV_POWER_USAGE", "power.draw"),
        ("SM clock (MHz)", "DCGM_FI_DEV_SM_CLOCK", "clocks.sm"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 3.6))
    for ax, (title, wave, smi) in zip(axes, panels, strict=True):
        ax.plot(t, [r["wave"].get(wave) for r in rows], "o-", label=f"wave exporter ({wave})")
        ax.plot(t, [r["nvidia_smi"].get(smi) for r in rows], "x--", label=f"nvidia-smi ({smi})")
        ax.set_title(title)
        ax.set_xlabel("seconds since the first scrape")
        ax.legend(fontsize=7)
    label = doc.get("labels", {}).get("modelName", "GPU")
    fig.suptitle(f"wave exporter (1 s interval, last sample served) vs nvidia-smi at each scrape: {label}")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--load-s", type=float, default=24.0)
    ap.add_argument("--hold-gib", type=float, default=16.0)
    ap.add_argument("--plot-only", action="store_true")
    args = ap.parse_args()
    out: Path = args.outdir
    if args.plot_only:
        plot(out / "summary.json", out / "exporter_vs_smi.png")
        return
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    log = (out / "exporter.log").open("w")
    exporter = subprocess.Popen(
        [sys.executable, "-m", "waveidp", "exporter", "--host", "127.0.0.1", "--port", str(port),
         "--interval", "1", "--hostname", "h100-device"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    doc: dict[str, Any] = {"command": " ".join(sys.argv), "scrapes": []}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _scrape(url)
                break
            except OSError:
                if time.monotonic() > deadline or exporter.poll() is not None:
                    raise SystemExit("exporter did not come up; see exporter.log") from None
                time.sleep(0.2)
        t0 = time.monotonic()

        def scrape(phase: str, keep: str | None = None) -> dict[str, Any]:
            text, ms = _scrape(url)
            smi = _smi()
            if keep:
                (out / keep).write_text(text)
            row = {"phase": phase, "t_s": round(time.monotonic() - t0, 2), "scrape_ms": round(ms, 2)}
            row["wave"] = _gpu_values(text)
            row["nvidia_smi"] = smi
            doc["scrapes"].append(row)
            w = row["wave"]
            mem, util = w.get("DCGM_FI_DEV_FB_USED", 0), w.get("DCGM_FI_DEV_GPU_UTIL")
            print(
                f"{phase:>5} t={row['t_s']:5.1f}s scrape {ms:6.1f} ms  mem {mem:8.0f} MiB"
                f" (smi {smi.get('memory.used')})  util {util} (smi {smi.get('utilization.gpu')})"
                f"  power {w.get('DCGM_FI_DEV_POWER_USAGE', 0):6.1f} W (smi {smi.get('power.draw')})"
                f"  sm {w.get('DCGM_FI_DEV_SM_CLOCK')} MHz  temp {w.get('DCGM_FI_DEV_GPU_TEMP')} C"
                f"  reasons {w.get('DCGM_FI_DEV_CLOCKS_EVENT_REASONS')}",
                flush=True,
            )
            return row

        time.sleep(1.5)
        scrape("idle", keep="idle.prom")
        time.sleep(1.0)
        scrape("idle")
        doc["labels"] = _labels((out / "idle.prom").read_text())
        from waveidp.bench.telemetry import Telemetry

        telemetry = Telemetry(0.5)
        telemetry.start()
        load = subprocess.Popen([sys.executable, "-c", LOAD, str(args.load_s), str(args.hold_gib)])
        time.sleep(6)
        n = max(int((args.load_s - 8) // 3), 1)
        for i in range(n):
            scrape("load", keep="load.prom" if i == n // 2 else None)
            time.sleep(2)
        load.wait(timeout=args.load_s + 120)
        telemetry.stop()
        doc["bench_telemetry"] = telemetry.summary(output_tokens=0, price_kwh=None)
        doc["bench_telemetry_samples"] = len(telemetry.samples)
        time.sleep(3)
        scrape("after", keep="after.prom")
        latencies = [s["scrape_ms"] for s in doc["scrapes"]]
        doc["scrape_ms_max"] = max(latencies)
        doc["sources"] = next(
            {s.labels["source"]: s.value for s in fam.samples}
            for fam in text_string_to_metric_families((out / "after.prom").read_text())
            if fam.name == "wave_exporter_source_available"
        )
        once = subprocess.run(
            [sys.executable, "-m", "waveidp", "exporter", "--once", "--hostname", "h100-device"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        doc["once_rc"] = once.returncode
        doc["once_has_gpu"] = "DCGM_FI_DEV_FB_USED{" in once.stdout
        doc["extra_fields_under_load"] = {
            k: v for k, v in _gpu_values((out / "load.prom").read_text()).items() if k in EXTRA
        }
    finally:
        exporter.terminate()
        try:
            exporter.wait(timeout=15)
        except subprocess.TimeoutExpired:
            exporter.kill()
        doc["exporter_rc"] = exporter.returncode
        (out / "summary.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(out / "summary.json", out / "exporter_vs_smi.png")
    print(json.dumps({k: v for k, v in doc.items() if k != "scrapes"}, indent=1))


if __name__ == "__main__":
    main()
