"""Loading wave.yaml: the examples load, and every kind of mistake is one error naming file:line and field."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from waveidp import fleet
from waveidp.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        fleet.loads(dedent(text), "wave.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["home-lab.yaml", "single-node.yaml"])
def test_examples_load(name: str) -> None:
    f = fleet.load(EXAMPLES / name)
    assert f.nodes and f.backends()
    assert f.gateway.node in {n.name for n in f.nodes}


def test_home_lab_describes_the_seed_fleet() -> None:
    f = fleet.load(EXAMPLES / "home-lab.yaml")
    hardware = {n.name: sorted(d.hardware for d in n.devices) for n in f.nodes}
    assert hardware["schlimers-server"] == ["rtx-5070-ti", "ryzen-9-9900x"]
    # the Proxmox host keeps its CPU; the GTX 1650 is passed through to LXC 107, which runs its backend
    assert hardware["xps15"] == ["i9-9980hk"]
    assert hardware["xps15-inference"] == ["gtx-1650"]
    inference = f.node("xps15-inference")
    assert inference.lxc is not None and (inference.lxc.host, inference.lxc.vmid) == ("xps15", 107)
    assert [b.name for b in inference.backends] == ["llamacpp-1650"] and not f.node("xps15").backends
    assert hardware["xps13"] == ["core-ultra-7-258v", "core-ultra-7-258v-npu"]
    assert hardware["jetson"] == ["jetson-orin-nano-super"]
    guest = f.node(f.gateway.node or "")
    assert guest.lxc is not None and guest.lxc.host == "xps15"
    engines = {b.name: (b.engine, b.url) for _, b in f.backends()}
    assert engines["vllm-5070ti"] == ("vllm", "http://schlimers-server:8000")
    assert engines["llamacpp-9900x"] == ("llamacpp", "http://schlimers-server:8080")
    assert engines["openvino-npu"][0] == "openai"


def test_typo_names_file_line_field_and_the_allowed_fields() -> None:
    message = _error("""\
        version: 1
        nodes:
          - name: a
            devices:
              - id: cpu
                hardwre: ryzen-9-9900x
        """)
    assert message.startswith("wave.yaml:6: nodes[0].devices[0].hardwre: unknown field 'hardwre'")
    assert "did you mean 'hardware'?" in message
    assert "allowed: id, hardware, count, memory_gib" in message
    assert "more problem" not in message  # the missing `hardware` is the same mistake


def test_wrong_type_names_file_line_and_field() -> None:
    message = _error("""\
        nodes:
          - name: a
            devices:
              - id: gpu0
                hardware: rtx-5070-ti
              - id: cpu
                hardware: ryzen-9-9900x
                count: two
        """)
    assert message.startswith("wave.yaml:8: nodes[0].devices[1].count:")
    assert "'two'" in message


def test_missing_required_field_points_at_its_mapping() -> None:
    message = _error("""\
        nodes:
          - name: a
          - address: 10.0.0.2
        """)
    assert message.startswith("wave.yaml:3: nodes[1].name: missing required field 'name'")


def test_invalid_choice_lists_the_valid_ones() -> None:
    message = _error("""\
        nodes:
          - name: a
            backends:
              - name: b
                engine: vlm
                url: http://a:8000
        """)
    assert message.startswith("wave.yaml:5: nodes[0].backends[0].engine:")
    assert "'vllm'" in message and "'vlm'" in message


def test_typo_inside_a_served_model_mapping() -> None:
    message = _error("""\
        nodes:
          - name: a
            backends:
              - name: b
                engine: vllm
                url: http://a:8000
                models:
                  - plain-name
                  - {name: x, contxt: 4096}
        """)
    assert message.startswith("wave.yaml:9: nodes[0].backends[0].models[1].contxt: unknown field 'contxt'")
    assert "did you mean 'context'?" in message


def test_several_problems_report_the_first_and_count_the_rest() -> None:
    message = _error("""\
        nodes:
          - name: a
            memory_gib: -4
            devices:
              - {id: cpu, hardware: x, count: 0}
        links:
          - {a: a, b: a, bandwidth_gbps: fast}
        """)
    assert message.startswith("wave.yaml:3: nodes[0].memory_gib:")
    assert message.endswith("and 2 more problems (lines 5, 7)")


def test_duplicate_node_names_point_at_the_second() -> None:
    message = _error("""\
        nodes:
          - name: a
          - name: b
          - name: a
        """)
    assert message == "wave.yaml:4: nodes[2].name: duplicate node name 'a'"


def test_duplicate_backend_names_across_nodes() -> None:
    message = _error("""\
        nodes:
          - name: a
            backends:
              - {name: llm, engine: vllm, url: "http://a:8000"}
          - name: b
            backends:
              - {name: other, engine: vllm, url: "http://b:8000"}
              - {name: llm, engine: llamacpp, url: "http://b:8080"}
        """)
    assert message == "wave.yaml:8: nodes[1].backends[1].name: duplicate backend name 'llm'"


def test_link_to_unknown_node() -> None:
    message = _error("""\
        nodes:
          - name: a
          - name: b
        links:
          - a: a
            b: c
            bandwidth_gbps: 2.5
        """)
    assert message == "wave.yaml:6: links[0].b: link end 'c' is not a node (nodes: a, b)"


def test_backend_using_a_device_the_node_lacks() -> None:
    message = _error("""\
        nodes:
          - name: a
            devices:
              - {id: cpu, hardware: ryzen-9-9900x}
            backends:
              - name: llm
                engine: vllm
                url: http://a:8000
                devices: [cpu, gpu0]
        """)
    assert message.startswith("wave.yaml:9: nodes[0].backends[0].devices[1]: backend llm uses device 'gpu0'")
    assert "(its devices: cpu)" in message


def test_gateway_on_unknown_node() -> None:
    message = _error("""\
        nodes:
          - name: a
        gateway:
          node: b
        """)
    assert message.startswith("wave.yaml:4: gateway.node:")


def test_yaml_syntax_error_gives_line_and_column() -> None:
    message = _error("""\
        nodes:
          - name: a
            devices: [cpu
          - name: b
        """)
    assert message.startswith("wave.yaml:4:9: YAML syntax error: expected ',' or ']'")


def test_duplicate_yaml_key_is_an_error_not_silently_overwritten() -> None:
    message = _error("""\
        nodes:
          - name: a
            role: inference
            role: services
        """)
    assert message == "wave.yaml:4: duplicate key 'role' (first at line 3)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "wave.yaml: the fleet file is empty"),
        ("- a\n- b\n", "wave.yaml:1: the fleet file must be a mapping"),
    ],
)
def test_empty_or_non_mapping_file(text: str, expected: str) -> None:
    assert _error(text).startswith(expected)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fleet file not found"):
        fleet.load(tmp_path / "nope.yaml")


def test_errors_name_the_real_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("nodes:\n  - name: a\n    rol: x\n")
    with pytest.raises(ConfigError) as info:
        fleet.load(path)
    assert str(info.value).startswith(f"{path}:3: nodes[0].rol: unknown field 'rol' (did you mean 'role'?")


def test_anchors_and_merge_keys_load() -> None:
    f = fleet.loads(
        dedent("""\
        nodes:
          - name: a
            devices:
              - &gpu {id: gpu0, hardware: rtx-3090}
          - name: b
            devices:
              - <<: *gpu
                count: 2
        """)
    )
    assert f.node("b").devices[0].hardware == "rtx-3090"
    assert f.node("b").devices[0].count == 2


def test_pattern_errors_say_what_is_allowed() -> None:
    assert _error("nodes:\n  - name: Big Box\n") == (
        "wave.yaml:2: nodes[0].name: must be lower-case letters, digits, '.', '_' or '-', first not a sign,"
        " got 'Big Box'"
    )
    assert "must be a URL starting with http:// or https://, got 'ftp://a'" in _error(
        "nodes:\n  - name: a\n    backends:\n      - {name: b, engine: vllm, url: 'ftp://a'}\n"
    )


def test_one_policy_for_every_model_keeps_each_models_slo_and_affinity() -> None:
    routing = fleet.load(EXAMPLES / "home-lab.yaml").routing
    assert routing.models["llama-3.2-1b-instruct"].slo is not None
    overridden = routing.with_policy("least-outstanding")
    assert overridden.policy_for("llama-3.2-1b-instruct") == "least-outstanding"
    assert overridden.policy_for("any-other-model") == "least-outstanding"
    before, after = routing.models["llama-3.2-1b-instruct"], overridden.models["llama-3.2-1b-instruct"]
    assert (after.slo, after.affinity) == (before.slo, before.affinity)
