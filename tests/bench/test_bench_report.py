"""results.json as one typed model: the files already written load, and say what is wrong when not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_support import wave

from waveidp.bench import metrics
from waveidp.bench.report import BenchReport, LoadPointSummary, Prediction, RequestRow
from waveidp.errors import InputError

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks/results"


def test_every_committed_results_file_loads_and_writes_back_unchanged(tmp_path: Path) -> None:
    """Results of every earlier version (the GPU runs, the CPU examples) are read as they are."""
    files = sorted(RESULTS.rglob("results.json"))
    assert len(files) >= 80
    for path in files:
        report = BenchReport.load(path)
        assert report.path == path and report.runs
        assert json.dumps(report.to_dict()) == json.dumps(json.loads(path.read_text())), path
    old = RESULTS / "bench_wave_up_smollm2"  # written before clock_origin_s and prediction arrivals
    report = BenchReport.load(old)
    assert report.runs[0].clock_origin_s is None and "clock_origin_s" not in report.to_dict()["runs"][0]
    assert report.predictions and report.predictions[0].arrival is None
    saved = report.save(tmp_path)
    assert json.loads(saved.read_text()) == json.loads((old / "results.json").read_text())


def test_every_declared_metric_names_a_field_of_the_report() -> None:
    declared = [m for m in vars(metrics).values() if isinstance(m, metrics.Metric)]
    assert len({m.key for m in declared}) == len(declared) >= 10
    for m in declared:
        assert m.key in LoadPointSummary.model_fields, m
        if isinstance(m, metrics.RequestMetric):
            assert m.key in RequestRow.model_fields, m
    for m in (metrics.TTFT, metrics.ITL, metrics.OUTPUT_THROUGHPUT):
        assert m.key in Prediction.model_fields


def test_a_file_that_is_not_a_report_is_one_clear_error(tmp_path: Path) -> None:
    good = json.loads((RESULTS / "bench_llama_server_smollm2/results.json").read_text())
    cases = {
        "other.json": ({"schema": "something/2", "runs": []}, "not a wave bench results file"),
        "broken.json": ({**good, "runs": [{**good["runs"][0], "load": "sideways"}]}, "runs.0.load"),
    }
    for name, (doc, needle) in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        with pytest.raises(InputError, match=needle.replace(".", r"\.")) as err:
            BenchReport.load(path)
        assert err.value.where == str(path)
    r = wave("bench", "compare", str(tmp_path / "broken.json"), str(RESULTS / "bench_llama_server_smollm2"))
    assert r.returncode == 2 and "runs.0.load" in r.stderr and "Traceback" not in r.stderr


def test_a_deployment_dumped_whole_and_read_back_keeps_only_the_settings_given() -> None:
    from waveidp.bench.report import DeploymentRecord

    rec = DeploymentRecord(
        model="smollm2-135m", quant="q4_1", devices=["cpu-generic"], engine="llamacpp", threads=1
    )
    again = DeploymentRecord.model_validate(rec.model_dump(mode="json"))  # every field set, unknowns None
    assert again.settings() == rec.settings() == {"threads": 1}
