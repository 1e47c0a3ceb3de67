"""Summarise llama-server logs into what the analysis reads, so that the logs need not be kept.

A run directory's `llama-server.log` (50 kB to 750 kB of per-request lines) becomes
`llama-server.summary.json`:

- `startup`: the lines before the first request, verbatim (model, slots, context per slot);
- `line_counts`: lines per level, subsystem and function;
- `warnings`: each distinct warning (numbers replaced by N), its count and first line;
- `events`: every slot launch (L), slot release (R) and cancelled task (C), as
  "TIMESTAMP KIND SLOT TASK" with llama-server's own timestamp (minutes.seconds.ms.us since
  start): what save_groups.py measures;
- `prompt_eval` / `generation`: from the print_timing lines, per prompt length the tasks and the
  median, min and max prompt time; per generated length the median ms per generated token.

    .venv/bin/python benchmarks/investigations/gpu/summarise_server_log.py RUN_DIR [RUN_DIR ...] [--remove]

--remove deletes each log once its summary is written.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from statistics import median
from typing import Any

LINE = re.compile(r"^(\d+\.\d+\.\d+\.\d+) ([IWE]) +(\S+) +(\S+?):? +(.*)$")
SLOT = re.compile(r"id +(\d+) \| task (-?\d+) \| ")
CANCEL = re.compile(r"cancel task, id_task = (\d+)")
TIMING = re.compile(r"(prompt eval|eval) time = +([\d.]+) ms / +(\d+) tokens")
NAME = "llama-server.summary.json"


def summarise(log: Path) -> dict[str, Any]:
    text = log.read_text(errors="replace")
    lines = text.splitlines()
    startup: list[str] = []
    counts: Counter[str] = Counter()
    warnings: dict[str, dict[str, Any]] = {}
    events: list[str] = []
    prompt: dict[int, list[float]] = {}
    generation: dict[int, list[float]] = {}
    requests_seen = False
    for line in lines:
        m = LINE.match(line)
        if not m:
            if not requests_seen:
                startup.append(line)
            continue
        ts, level, sub, func, msg = m.groups()
        requests_seen = requests_seen or sub == "slot"
        if not requests_seen:
            startup.append(line)
        counts[f"{level} {sub} {func}"] += 1
        if level == "W":
            kind = re.sub(r"\d+(\.\d+)?", "N", f"{sub} {func}: {msg}")
            w = warnings.setdefault(kind, {"count": 0, "first": line})
            w["count"] += 1
        slot = SLOT.match(msg)
        if func in ("launch_slot_", "release") and slot:
            events.append(f"{ts} {'L' if func == 'launch_slot_' else 'R'} {slot[1]} {slot[2]}")
        elif (c := CANCEL.search(msg)) is not None:
            events.append(f"{ts} C - {c[1]}")
        elif func == "print_timing" and (t := TIMING.search(msg)) is not None:
            ms, tokens = float(t[2]), int(t[3])
            if t[1] == "prompt eval":
                prompt.setdefault(tokens, []).append(ms)
            elif tokens:
                generation.setdefault(tokens, []).append(ms / tokens)
    return {
        "summary_of": f"{log.name}: {len(lines)} lines, {len(text.encode())} bytes",
        "command": "python benchmarks/investigations/gpu/summarise_server_log.py RUN_DIR",
        "startup": startup,
        "line_counts": dict(counts.most_common()),
        "warnings": warnings,
        "events": events,
        "prompt_eval": {
            f"{n} tokens": {"tasks": len(v), "ms_median": median(v), "ms_min": min(v), "ms_max": max(v)}
            for n, v in sorted(prompt.items())
        },
        "generation": {
            f"{n} tokens": {"tasks": len(v), "ms_per_token_median": round(median(v), 4)}
            for n, v in sorted(generation.items())
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (those without a log are skipped)")
    ap.add_argument("--remove", action="store_true", help="delete each log once summarised")
    args = ap.parse_args()
    for run in args.runs:
        log = run / "llama-server.log"
        if not log.is_file():
            continue
        out = run / NAME
        out.write_text(json.dumps(summarise(log), indent=0) + "\n")
        print(f"{log}: {log.stat().st_size // 1024} kB -> {out.name}: {out.stat().st_size // 1024} kB")
        if args.remove:
            log.unlink()


if __name__ == "__main__":
    main()
