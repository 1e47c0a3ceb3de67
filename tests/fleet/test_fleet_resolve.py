"""Resolving a fleet against the catalogs: unknown ids name the file:line and the closest ids."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from waveidp import catalog, fleet
from waveidp.errors import ConfigError, NotFoundError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GIB = 1024**3


@pytest.mark.parametrize("name", ["home-lab.yaml", "single-node.yaml"])
def test_examples_resolve(name: str) -> None:
    resolved = fleet.resolve(fleet.load(EXAMPLES / name))
    used = {d.hardware for n in resolved.fleet.nodes for d in n.devices}
    assert set(resolved.hardware) == used
    assert not resolved.unresolved_models


def test_home_lab_devices_get_catalog_figures_and_node_ram_for_cpus() -> None:
    resolved = fleet.resolve(fleet.load(EXAMPLES / "home-lab.yaml"))
    server = resolved.fleet.node("schlimers-server")
    gpu, cpu = server.devices
    assert resolved.device_memory_bytes(gpu, server) == catalog.hardware("rtx-5070-ti").memory_bytes
    assert resolved.device_memory_bytes(cpu, server) == 128 * GIB  # the box's RAM, not the catalog's nominal
    assert resolved.models["llama-3.1-8b"].kv_heads == catalog.model("llama-3.1-8b").kv_heads
    assert resolved.quants["awq"].id == "awq"


def _resolve(text: str) -> fleet.ResolvedFleet:
    return fleet.resolve(fleet.loads(dedent(text), "lab.yaml"))


def test_unknown_hardware_suggests_the_closest_and_points_at_the_value() -> None:
    with pytest.raises(NotFoundError) as info:
        _resolve("""\
            nodes:
              - name: a
                devices:
                  - {id: cpu, hardware: ryzen-9-9900x}
                  - id: gpu0
                    hardware: rtx-5070ti
            """)
    assert info.value.where == "lab.yaml:6: nodes[0].devices[1].hardware"
    assert "rtx-5070-ti" in info.value.suggestions
    assert str(info.value).startswith(
        "lab.yaml:6: nodes[0].devices[1].hardware: unknown hardware 'rtx-5070ti' (did you mean rtx-5070-ti"
    )


def test_unknown_model_and_quant() -> None:
    base = """\
        nodes:
          - name: a
            devices: [{id: gpu0, hardware: rtx-4090}]
            backends:
              - name: llm
                engine: vllm
                url: http://a:8000
                models:
                  - name: chat
                    model: MODEL
                    quant: QUANT
        """
    with pytest.raises(NotFoundError) as info:
        _resolve(base.replace("MODEL", "llama-3.1-8").replace("QUANT", "awq"))
    assert info.value.where == "lab.yaml:10: nodes[0].backends[0].models[0].model"
    assert "llama-3.1-8b" in info.value.suggestions
    with pytest.raises(NotFoundError) as info:
        _resolve(base.replace("MODEL", "llama-3.1-8b").replace("QUANT", "q4_km"))
    assert info.value.where == "lab.yaml:11: nodes[0].backends[0].models[0].quant"
    assert "q4_k_m" in info.value.suggestions


def test_quant_the_engine_cannot_load() -> None:
    with pytest.raises(ConfigError) as info:
        _resolve("""\
            nodes:
              - name: a
                devices: [{id: cpu, hardware: ryzen-9-9900x}]
                backends:
                  - name: cpu-llm
                    engine: llamacpp
                    url: http://a:8080
                    models: [{name: chat, model: llama-3.1-8b, quant: awq}]
            """)
    assert str(info.value).startswith(
        "lab.yaml:8: nodes[0].backends[0].models[0].quant: backend cpu-llm (llamacpp) cannot load chat as awq"
    )


def test_model_paths_are_read_when_present_and_left_to_their_node_otherwise(tmp_path: Path) -> None:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps(config))
    path = tmp_path / "wave.yaml"
    path.write_text(
        dedent("""\
        nodes:
          - name: a
            devices: [{id: gpu0, hardware: rtx-4090}]
            backends:
              - name: llm
                engine: vllm
                url: http://a:8000
                models:
                  - {name: local, model: llama/config.json, quant: bf16}
                  - {name: remote, model: /srv/models/elsewhere.gguf}
        """)
    )
    resolved = fleet.resolve(fleet.load(path))
    spec = resolved.models["llama/config.json"]
    assert (spec.layers, spec.kv_heads, spec.head_dim) == (32, 8, 128)
    assert resolved.unresolved_models == ["/srv/models/elsewhere.gguf"]


def test_fleets_built_in_code_resolve_without_positions() -> None:
    f = fleet.Fleet(nodes=[fleet.Node(name="a", devices=[fleet.Device(id="x", hardware="h100-sxn")])])
    with pytest.raises(NotFoundError) as info:
        fleet.resolve(f)
    assert info.value.where == "<fleet>: nodes[0].devices[0].hardware"
    assert "h100-sxm" in info.value.suggestions
