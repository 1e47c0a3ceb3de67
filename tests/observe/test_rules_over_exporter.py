"""The rendered alert rules, run by the real promtool over series exactly as `wave exporter` exposes
them (names and every label), so the rules that work with DCGM exporter work with Wave's too."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_pynvml import FakeNvml, geforce, h100
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from waveidp.observe import NodeCollector, NvmlReader, TegrastatsReader
from waveidp.observe.exposition import NodeMetrics
from waveidp.render._observe import alert_rules

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (make system-deps)")


def _exposition(fake: FakeNvml) -> str:
    c = NodeCollector(60, nvml=NvmlReader(nvml=fake), tegrastats=TegrastatsReader("/nonexistent"))
    c.hostname = "gpu-box"
    try:
        c.open()
        fake.events.put((1, 79))
        deadline = time.monotonic() + 10
        while not c.sample().gpus[1].xid_counts:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(NodeMetrics(c, stale_after_s=60))
        return generate_latest(registry).decode()
    finally:
        c.close()


def _series(text: str, names: set[str], instance: str) -> dict[str, dict[str, str]]:
    """promtool input series (constant over the test) for the named metrics, keyed by series string."""
    out: dict[str, dict[str, str]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in names:
                labels = {**s.labels, "instance": instance}
                key = s.name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
                out[key] = labels
                out[key]["__value__"] = repr(float(s.value))
    return out


def _alert(labels: dict[str, str], severity: str) -> dict[str, str]:
    return {**{k: v for k, v in labels.items() if k != "__value__"}, "severity": severity}


def test_gpu_rules_fire_on_wave_exporter_series(tmp_path: Path) -> None:
    full, idle = h100(), h100()
    idle.uuid, idle.used, idle.reasons = "GPU-idle", 2**30, 0x4  # power cap only: not a throttle alert
    text = _exposition(FakeNvml([full, idle, geforce()]))
    names = {
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
        "DCGM_FI_DEV_XID_ERRORS",
    }
    series = _series(text, names, "gpu-box:9401")
    assert len(series) == 3 + 3 + 3 + 2  # no XID series for the GeForce (no events there)
    rules = tmp_path / "alerts.yml"
    rules.write_text(yaml.safe_dump(alert_rules()))

    def gpu(name: str, index: str) -> dict[str, str]:
        return next(v for k, v in series.items() if k.startswith(name + "{") and v["gpu"] == index)

    expected: dict[str, list[dict[str, Any]]] = {
        "GPUMemoryPressure": [
            {
                "exp_labels": _alert(gpu("DCGM_FI_DEV_FB_USED", "0"), "warning"),
                "exp_annotations": {"summary": "GPU 0 on gpu-box has used more than 97% of its memory"},
            }
        ],
        "GPUClocksThrottled": [
            {
                "exp_labels": _alert(gpu("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "0"), "warning"),
                "exp_annotations": {
                    "summary": "GPU 0 on gpu-box runs below its clocks for heat or a power brake (NVML "
                    "clocks event reasons bitmask 68; the power cap and idle do not count)"
                },
            }
        ],
        "GPUXidError": [
            {
                "exp_labels": _alert(gpu("DCGM_FI_DEV_XID_ERRORS", "1"), "critical"),
                "exp_annotations": {
                    "summary": "GPU 1 on gpu-box reported XID 79 (from DCGM or from NVML events in wave "
                    "exporter; Jetson XIDs appear only in the kernel log)"
                },
            }
        ],
    }
    for alerts in expected.values():
        for a in alerts:
            a["exp_labels"].pop("__name__", None)
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": k, "values": f"{v['__value__']}x30"} for k, v in series.items()],
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": name, "exp_alerts": alerts}
                    for name, alerts in expected.items()
                ],
            }
        ],
    }
    spec = tmp_path / "test.yml"
    spec.write_text(yaml.safe_dump(test))
    r = subprocess.run(["promtool", "test", "rules", str(spec)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_host_rules_fire_on_node_exporter_names(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yml"
    rules.write_text(yaml.safe_dump(alert_rules()))
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'node_memory_MemTotal_bytes{instance="full"}', "values": "1000x30"},
                    {"series": 'node_memory_MemAvailable_bytes{instance="full"}', "values": "30x30"},
                    {"series": 'node_memory_MemTotal_bytes{instance="roomy"}', "values": "1000x30"},
                    {"series": 'node_memory_MemAvailable_bytes{instance="roomy"}', "values": "600x30"},
                    # a live exporter's timestamp advances with time; a stuck one's stays put
                    {
                        "series": 'wave_exporter_last_sample_timestamp_seconds{instance="live"}',
                        "values": "0+60x30",
                    },
                    {
                        "series": 'wave_exporter_last_sample_timestamp_seconds{instance="stuck"}',
                        "values": "0x30",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "15m",
                        "alertname": "HostMemoryPressure",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "instance": "full"},
                                "exp_annotations": {
                                    "summary": "full has less than 5% of its memory available"
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "ExporterStalled",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "instance": "stuck"},
                                "exp_annotations": {
                                    "summary": "wave exporter on stuck has not finished a device read for "
                                    "over 60 s (a GPU or tegrastats is hanging)"
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    spec = tmp_path / "test.yml"
    spec.write_text(yaml.safe_dump(test))
    r = subprocess.run(["promtool", "test", "rules", str(spec)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
