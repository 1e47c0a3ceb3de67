"""schemathesis against the running gateway's own OpenAPI document (security on, bootstrap key):
at least 1000 generated cases over the model endpoints, zero 5xx, zero schema violations."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .gateway_fixtures import BOOTSTRAP_KEY, RunningGateway, start_gateway, start_llama

pytestmark = [pytest.mark.engine, pytest.mark.serial]  # generates fewer cases on a loaded machine
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
# Well over 1000 cases over the three model endpoints together. `/ready` is included
# because its answer names the served models, which schemathesis then reuses in request bodies
# (without it nearly every case is a 404 for a made-up model).
# (max examples, least cases generated) per endpoint: completions reach the engine most often
# (prompt prefill makes them the slowest), so they get fewer.
EXAMPLES = {"/v1/chat/completions": (330, 380), "/v1/completions": (250, 300), "/v1/embeddings": (360, 380)}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    work = tmp_path_factory.mktemp("schemathesis")
    with contextlib.ExitStack() as stack:
        llama = start_llama(stack, work)
        yield start_gateway(stack, work / "home", [llama])


def failures(stdout: str) -> list[tuple[str, str]]:
    """(check title, first line of its detail) for every failure schemathesis printed."""
    found = []
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^- (ST\d+ .+)$", line.strip())
        if m:
            detail = next((x.strip() for x in lines[i + 1 :] if x.strip()), "")
            found.append((m.group(1), detail))
    return found


@pytest.mark.parametrize("path", list(EXAMPLES))
def test_schemathesis(gw: RunningGateway, path: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    cmd = [
        str(SCHEMATHESIS), "run", gw.url + "/openapi.json", "--checks", CHECKS,
        "--include-path", path, "--include-path", "/ready",
        "-n", str(EXAMPLES[path][0]), "--seed", "1", "--no-color",
        "-H", f"Authorization: Bearer {BOOTSTRAP_KEY}",
        "--continue-on-failure", "--generation-database", "none", "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
        "--workers", "2",  # schemathesis computes while the engine answers: a third less wall time
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=110)
    summary = json.loads(report.read_text())
    assert summary["test_cases"]["generated"] >= EXAMPLES[path][1], summary["test_cases"]
    assert summary["errors"] == [], run.stdout[-4000:]
    found = failures(run.stdout)
    assert not found, run.stdout[-6000:]
    assert run.returncode == 0, run.stdout[-4000:]
