"""`wave fleet` end to end through the installed `wave` command (real /proc, real files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support import wave_process
from waveidp import fleet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


wave = wave_process


def test_detect_json_reads_this_machine() -> None:
    result = wave("fleet", "detect", "--json", "--name", "ci-box")
    assert result.returncode == 0, result.stderr
    node = fleet.Node.model_validate(json.loads(result.stdout))
    cpu = node.devices[0]
    assert node.name == "ci-box" and cpu.cores
    if cpu.hardware == "cpu-generic":  # not in the catalog: described by what was read and measured
        assert cpu.flop_per_cycle["fp32"] >= 8 and cpu.base_ghz
        assert cpu.memory_bandwidth_gb_s and cpu.core_bandwidth_gb_s
        assert cpu.memory_bandwidth_gb_s >= 0.9 * cpu.core_bandwidth_gb_s > 0.5


def test_detect_prints_a_fleet_file(tmp_path: Path) -> None:
    result = wave("fleet", "detect", "--name", "ci-box", "--no-probe")
    assert result.returncode == 0, result.stderr
    (tmp_path / "wave.yaml").write_text(result.stdout)
    assert [n.name for n in fleet.load(tmp_path / "wave.yaml").nodes] == ["ci-box"]


def test_detect_merge_adds_the_node_without_changing_the_others(tmp_path: Path) -> None:
    target = tmp_path / "home-lab.yaml"
    shutil.copy(EXAMPLES / "home-lab.yaml", target)
    before = fleet.load(target)
    # --no-probe: a re-detect re-measures the bandwidth, which differs run to run
    result = wave("fleet", "detect", "--merge", target, "--name", "ci-box", "--no-probe")
    assert result.returncode == 0, result.stderr
    assert "added node ci-box" in result.stderr
    after = fleet.load(target)
    assert after.nodes[:-1] == before.nodes and after.nodes[-1].name == "ci-box"
    assert (after.links, after.routing, after.gateway) == (before.links, before.routing, before.gateway)
    assert "# The seed home lab" in target.read_text()  # the user's comments survive
    assert [p.name for p in tmp_path.iterdir()] == ["home-lab.yaml"]  # no temp file left behind

    again = wave("fleet", "detect", "--merge", target, "--name", "ci-box", "--no-probe")
    assert "updated node ci-box" in again.stderr
    assert fleet.load(target) == after


def test_detect_merge_leaves_a_broken_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "wave.yaml"
    target.write_text("nodes:\n  - name: a\n    rol: x\n")
    result = wave("fleet", "detect", "--merge", target, "--no-probe")
    assert result.returncode == 2
    assert target.read_text() == "nodes:\n  - name: a\n    rol: x\n"


def test_detect_merge_refuses_to_break_an_existing_node(tmp_path: Path) -> None:
    target = tmp_path / "home-lab.yaml"
    shutil.copy(EXAMPLES / "home-lab.yaml", target)
    result = wave("fleet", "detect", "--merge", target, "--name", "jetson", "--no-probe")  # no 'soc' here
    assert result.returncode == 2
    assert (
        f"{target}: merging node jetson would make the fleet invalid: nodes[4].backends[0].devices[0]"
        in result.stderr
    )
    assert target.read_text() == (EXAMPLES / "home-lab.yaml").read_text()


def test_detect_merge_creates_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "new.yaml"
    assert wave("fleet", "detect", "--merge", target, "--name", "first", "--no-probe").returncode == 0
    assert [n.name for n in fleet.load(target).nodes] == ["first"]


@pytest.mark.parametrize("name", ["home-lab.yaml", "single-node.yaml"])
def test_validate_examples(name: str) -> None:
    result = wave("fleet", "validate", EXAMPLES / name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_validate_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "wave.yaml"
    text = (EXAMPLES / "home-lab.yaml").read_text()
    bad.write_text(text.replace("hardware: gtx-1650", "hardware: gtx-1560"))
    result = wave("fleet", "validate", bad)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"{bad}:114: nodes[5].devices[0].hardware: unknown hardware 'gtx-1560'" in lines[0]
    assert "gtx-1650" in lines[0]


def test_show_lists_nodes_devices_with_catalog_figures_and_backends() -> None:
    result = wave("fleet", "show", EXAMPLES / "home-lab.yaml")
    assert result.returncode == 0, result.stderr
    for text in ("schlimers-server", "rtx-5070-ti", "896 GB/s", "vllm-5070ti", "LXC 101 on xps15", "40 Gb/s"):
        assert text in result.stdout
    assert "SLO TTFT <= 1 s, ITL <= 25 ms" in " ".join(result.stdout.split())
    data = json.loads(wave("fleet", "show", "--json", EXAMPLES / "home-lab.yaml").stdout)
    assert data["hardware"]["rtx-5070-ti"]["memory_bandwidth_bytes_per_s"] == pytest.approx(896e9)
    assert data["fleet"]["nodes"][0]["name"] == "schlimers-server"
