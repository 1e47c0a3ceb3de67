"""The audit spool's files with several writers starting at once (`wave serve --workers N` starts
its workers together): each writer owns its file from the moment another can see it, so no
starting writer takes a live one's file for a dead writer's."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from waveidp.security.audit_spool import Spool

STARTS = """
import sys, time
from pathlib import Path
from waveidp.security.audit_spool import Spool
directory, until, me = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
while time.time() < until:  # start together
    pass
spools = []
for _ in range(40):
    spools.append(Spool(directory / "spool"))
    spools[-1].add([{"writer": me}])
print(sum(len(s.adopted) for s in spools), flush=True)
(directory / me).touch()
deadline = time.time() + 30
while len(list(directory.glob("w*"))) < 6 and time.time() < deadline:  # live until all have started
    time.sleep(0.01)
"""


def test_writers_starting_at_once_never_take_each_others_files(tmp_path: Path) -> None:
    until = str(time.time() + 1.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTS, str(tmp_path), until, f"w{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err[-2000:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["0"] * 6  # nothing adopted: every writer was alive


def test_a_dead_writers_entries_are_adopted_by_the_next_one(tmp_path: Path) -> None:
    script = "import sys, os\nfrom pathlib import Path\nfrom waveidp.security.audit_spool import Spool\n"
    script += "s = Spool(Path(sys.argv[1])); s.add([{'n': 1}, {'n': 2}]); os._exit(0)"
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    spool = Spool(tmp_path)
    assert spool.adopted == [{"n": 1}, {"n": 2}]
    spool.pop(2, adopted=True)
    spool.close()
    assert list(tmp_path.iterdir()) == []
