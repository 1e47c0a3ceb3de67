"""Writing fleets: dump round-trips without default noise; merging a node keeps everything else."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
import yaml

from waveidp import fleet
from waveidp.errors import ConfigError
from waveidp.fleet import Device, Node
from waveidp.fleet.detect import DETECTED_FIELDS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["home-lab.yaml", "single-node.yaml"])
def test_dump_round_trips(name: str) -> None:
    original = fleet.load(EXAMPLES / name)
    text = fleet.dump(original)
    assert fleet.loads(text) == original
    assert fleet.dump(fleet.loads(text)) == text  # stable


def test_dump_writes_no_defaults_and_keeps_field_order() -> None:
    box = Node(name="box", devices=[Device(id="cpu", hardware="cpu-generic", memory_gib=16.0)])
    f = fleet.Fleet(nodes=[box])
    text = fleet.dump(f)
    assert text == dedent("""\
        version: 1
        nodes:
          - name: box
            devices:
              - id: cpu
                hardware: cpu-generic
                memory_gib: 16
        """)


def test_served_models_that_are_only_names_stay_names() -> None:
    f = fleet.loads(
        "nodes:\n  - name: a\n    backends:\n      - {name: b, engine: vllm, url: 'http://a:1',"
        " models: [chat, {name: code, quant: awq}]}\n"
    )
    data = yaml.safe_load(fleet.dump(f))
    assert data["nodes"][0]["backends"][0]["models"] == ["chat", {"name": "code", "quant": "awq"}]


def _box(name: str = "newbox") -> Node:
    return Node(
        name=name,
        address="newbox.lan",
        memory_gib=64,
        devices=[Device(id="cpu", hardware="ryzen-9-9900x", cores=12, flags=["avx512f"])],
    )


def test_merge_adds_a_new_node_and_keeps_the_others() -> None:
    before = fleet.load(EXAMPLES / "home-lab.yaml")
    after = fleet.merge_node(before, _box())
    assert [n.name for n in after.nodes] == [*(n.name for n in before.nodes), "newbox"]
    assert after.nodes[:-1] == before.nodes
    assert (after.links, after.routing, after.gateway) == (before.links, before.routing, before.gateway)


def test_merge_into_an_existing_node_updates_hardware_and_keeps_its_backends() -> None:
    before = fleet.load(EXAMPLES / "home-lab.yaml")
    detected = Node(
        name="jetson",
        memory_gib=7.4,
        devices=[Device(id="soc", hardware="jetson-orin-nano-super", cores=6, flags=["asimd"])],
    )
    after = fleet.merge_node(before, detected)
    jetson = after.node("jetson")
    assert jetson.memory_gib == 7.4 and jetson.devices[0].cores == 6
    assert jetson.backends == before.node("jetson").backends
    assert jetson.address == before.node("jetson").address  # detection did not set it
    assert [n for n in after.nodes if n.name != "jetson"] == [n for n in before.nodes if n.name != "jetson"]


def test_merge_limited_to_detected_fields_keeps_a_curated_address() -> None:
    before = fleet.load(EXAMPLES / "home-lab.yaml")
    detected = Node(
        name="jetson",
        address="jetson-hostname",
        role="whatever",
        memory_gib=7.4,
        devices=[Device(id="soc", hardware="jetson-orin-nano-super")],
    )
    jetson = fleet.merge_node(before, detected, only=DETECTED_FIELDS).node("jetson")
    assert (jetson.address, jetson.role, jetson.memory_gib) == ("192.168.100.50", "edge", 7.4)
    assert fleet.merge_node(before, detected).node("jetson").address == "jetson-hostname"


def test_merge_that_breaks_a_backend_is_refused() -> None:
    before = fleet.load(EXAMPLES / "home-lab.yaml")
    no_gpu = Node(name="schlimers-server", devices=[Device(id="cpu", hardware="ryzen-9-9900x")])
    with pytest.raises(ConfigError, match="uses device 'gpu0'"):
        fleet.merge_node(before, no_gpu)


def test_merge_text_keeps_comments_and_layout() -> None:
    text = (EXAMPLES / "home-lab.yaml").read_text()
    merged = fleet.merge_node_text(text, "home-lab.yaml", _box())
    assert merged.startswith(text[: text.index("links:")].rstrip("\n"))  # everything before is untouched
    assert merged.count("#") == text.count("#")
    assert fleet.loads(merged) == fleet.merge_node(fleet.loads(text), _box())
    assert merged.index("name: newbox") < merged.index("links:")


def test_merge_text_replaces_only_the_node_it_updates() -> None:
    text = (EXAMPLES / "home-lab.yaml").read_text()
    detected = Node(
        name="xps15",
        memory_gib=62.6,
        devices=[Device(id="cpu", hardware="i9-9980hk"), Device(id="gpu0", hardware="gtx-1650")],
    )
    merged = fleet.merge_node_text(text, "home-lab.yaml", detected)
    assert "memory_gib: 62.6" in merged
    start, end = text.index("  - name: xps15"), text.index("  # LXC guest on xps15")
    assert merged.startswith(text[:start]) and merged.endswith(text[end:])


def test_merge_text_falls_back_to_a_full_dump_for_flow_style_files() -> None:
    text = "nodes: [{name: a}]\n"
    merged = fleet.merge_node_text(text, "w.yaml", _box())
    assert [n.name for n in fleet.loads(merged).nodes] == ["a", "newbox"]
