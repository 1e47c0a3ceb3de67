"""schemathesis over the routes the extended OpenAPI document adds (Responses, Messages and
count_tokens, rerank, score, tokenize, detokenize, audio, model retrieve, stored responses), against
the client tests' gateway (llama-server passed through and translated, wave emulate, the test
upstream): zero 5xx, answers as documented. The chat routes are tests/security's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clients_support import KEY, Fleet

pytestmark = [pytest.mark.engine, pytest.mark.serial]  # generates fewer cases on a loaded machine
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
PATHS = [
    "/v1/responses",
    "/v1/responses/{response_id}",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/rerank",
    "/v1/score",
    "/tokenize",
    "/detokenize",
    "/v1/audio/transcriptions",
    "/v1/audio/speech",
    "/v1/models/{model}",
]
# Per operation (its coverage phase adds the boundary cases: ~600 cases in all); /ready is
# included so that generated bodies name served models.
EXAMPLES = 10


@pytest.mark.timeout(300)
def test_schemathesis_over_the_added_routes(fleet: Fleet, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    cmd = [
        str(SCHEMATHESIS),
        "run",
        fleet.url + "/openapi.json",
        "--checks",
        CHECKS,
        "--include-path",
        "/ready",
    ]
    for path in PATHS:
        cmd += ["--include-path", path]
    cmd += [
        "-n", str(EXAMPLES), "--seed", "1", "--no-color", "-H", f"Authorization: Bearer {KEY}",
        "--continue-on-failure", "--generation-database", "none", "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    summary = json.loads(report.read_text())
    assert summary["test_cases"]["generated"] >= 400, summary["test_cases"]
    assert summary["errors"] == [], run.stdout[-4000:]
    failed = [line.strip() for line in run.stdout.splitlines() if re.match(r"^- ST\d+ ", line.strip())]
    assert not failed, run.stdout[-6000:]
    assert run.returncode == 0, run.stdout[-4000:]
