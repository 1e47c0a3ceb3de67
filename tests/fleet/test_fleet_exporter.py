"""A node's `exporter:` URLs (where the gateway reads its GPU and host telemetry) and which of the
node's GPUs, as the exporters number them, each backend runs on."""

from __future__ import annotations

from textwrap import dedent

import pytest

from waveidp import fleet
from waveidp.errors import ConfigError

FLEET = """\
version: 1
nodes:
  - name: box
    exporter: http://box:9401
    devices:
      - {id: cpu, hardware: ryzen-9-9900x}
      - {id: big, hardware: h100-sxm, count: 2}
      - {id: small, hardware: rtx-4090}
    backends:
      - {name: on-big, engine: vllm, url: "http://box:8000", models: [m], devices: [big]}
      - {name: on-small, engine: llamacpp, url: "http://box:8001", models: [m], devices: [small]}
      - {name: on-cpu, engine: llamacpp, url: "http://box:8002", models: [m], devices: [cpu]}
      - {name: everywhere, engine: llamacpp, url: "http://box:8003", models: [m]}
  - name: dgx
    exporter: ["http://dgx:9400/metrics", "http://dgx:9100"]
    devices: [{id: gpu, hardware: h100-sxm, count: 8}]
"""


def test_exporter_urls_one_or_several() -> None:
    f = fleet.loads(FLEET, "wave.yaml")
    assert f.node("box").exporter == ["http://box:9401"]
    assert f.node("dgx").exporter == ["http://dgx:9400/metrics", "http://dgx:9100"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("box:9401", "must be an http(s) URL with a host"),
        ("http://box:99999/metrics", "port out of range"),
        ("http://box:9401/me trics", "must not contain spaces"),
        ("{a: 1}", "must be a URL or a list of URLs"),
    ],
)
def test_a_bad_exporter_url_is_one_error_naming_the_line(value: str, says: str) -> None:
    text = FLEET.replace("exporter: http://box:9401", f"exporter: {value}")
    with pytest.raises(ConfigError) as info:
        fleet.loads(dedent(text), "wave.yaml")
    message = str(info.value)
    assert "wave.yaml:4" in message and "exporter" in message and says in message


def test_gpu_indices_follow_the_file_order_of_the_nodes_gpus() -> None:
    f = fleet.loads(FLEET, "wave.yaml")
    box = f.node("box")
    by_name = {b.name: fleet.gpu_indices(box, b) for b in box.backends}
    # the two H100s are 0 and 1, the 4090 after them; the CPU takes no index
    assert by_name == {"on-big": (0, 1), "on-small": (2,), "on-cpu": (), "everywhere": (0, 1, 2)}
