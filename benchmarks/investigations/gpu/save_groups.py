"""How llama-server's finished requests group, and how long its host thread stalls after each group.

In a closed-loop burst the clients drift into groups whose requests finish (slot releases) within
a few milliseconds of each other; with the host prompt cache on, the server's host thread then
stalls before it launches the group's next prompts. For every run this prints the release-group
sizes (releases closer than GAP_MS to the previous one join its group) and the stall: from the
group's last release to the last launch it triggers. The slot events come from each run's
llama-server.summary.json (summarise_server_log.py keeps them from the server's log).

    .venv/bin/python benchmarks/investigations/gpu/save_groups.py [RUN_DIR ...]    # default: every run

Writes benchmarks/results/gpu/save_groups.json.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from waveidp.bench.report import BenchReport

ROOT = Path(__file__).resolve().parents[3]
RUNS = ROOT / "benchmarks/results/gpu/runs"
OUT = ROOT / "benchmarks/results/gpu/save_groups.json"
GAP_MS = 30.0
SUMMARY = "llama-server.summary.json"


def events(summary: Path) -> list[tuple[float, str]]:
    """(seconds, 'R' or 'L') for every slot release and launch, in log order."""
    out = []
    for event in json.loads(summary.read_text())["events"]:
        stamp, kind = event.split()[:2]
        if kind in ("R", "L"):
            mins, secs, ms, us = (int(x) for x in stamp.split("."))
            out.append((mins * 60 + secs + ms / 1e3 + us / 1e6, kind))
    return out


def groups(ev: list[tuple[float, str]]) -> list[dict[str, float]]:
    """Release groups and the launches that follow each before the next release."""
    out: list[dict[str, float]] = []
    i = 0
    while i < len(ev):
        if ev[i][1] != "R":
            i += 1
            continue
        j = i
        while j + 1 < len(ev) and ev[j + 1][1] == "R" and (ev[j + 1][0] - ev[j][0]) * 1e3 < GAP_MS:
            j += 1
        k = j + 1
        launches = []
        while k < len(ev) and ev[k][1] == "L":
            launches.append(ev[k][0])
            k += 1
        if launches:
            out.append({"size": j - i + 1, "n_launch": len(launches),
                        "stall_ms": (launches[-1] - ev[j][0]) * 1e3})  # fmt: skip
        i = j + 1
    return out


def summarise(run: Path) -> dict[str, Any] | None:
    res = next(run.glob("*/results.json"), None)
    log = run / SUMMARY
    if res is None or not log.exists():
        return None
    conc = sorted({r.concurrency or 0 for r in BenchReport.load(res).runs})
    gs = groups(events(log))
    if not gs:
        return None
    sizes = [g["size"] for g in gs]
    # weight by requests: what a request sees is the group it finished in
    per_request = [g["size"] for g in gs for _ in range(int(g["size"]))]
    cmds = (run / "commands.txt").read_text() if (run / "commands.txt").exists() else ""
    return {
        "run": run.name,
        "concurrency": conc,
        "cache_off": "--cache-ram 0" in cmds,
        "groups": len(gs),
        "group_size_mean": round(statistics.mean(sizes), 2),
        "group_size_per_request_median": statistics.median(per_request),
        "group_size_per_request_mean": round(statistics.mean(per_request), 2),
        "stall_ms_median": round(statistics.median(g["stall_ms"] for g in gs), 1),
        "stall_ms_per_slot_median": round(statistics.median(g["stall_ms"] / g["size"] for g in gs), 1),
    }


def main(argv: list[str]) -> None:
    runs = [Path(a) for a in argv] or sorted(p for p in RUNS.iterdir() if (p / SUMMARY).exists())
    rows = [r for r in (summarise(p) for p in runs) if r]
    for r in rows:
        print(f"{r['run']:38} c={r['concurrency']!s:12} off={r['cache_off']!s:5} n={r['groups']:3} "
              f"size/req med {r['group_size_per_request_median']:4} "
              f"mean {r['group_size_per_request_mean']:5} "
              f"stall {r['stall_ms_median']:6} ms ({r['stall_ms_per_slot_median']} ms/slot)")  # fmt: skip
    if not argv:
        doc = {
            "gap_ms": GAP_MS,
            "runs": rows,
            "command": ".venv/bin/python benchmarks/investigations/gpu/save_groups.py",
        }
        OUT.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
