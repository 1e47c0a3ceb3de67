"""The service catalog file: complete, sourced, and its errors name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from waveidp.catalog.services import load_services, service, services
from waveidp.errors import ConfigError, NotFoundError

ISSUE_SERVICES = {
    "nvidia-container-toolkit",
    "vllm",
    "llamacpp",
    "triton",
    "tensorrt-llm",
    "nim",
    "dcgm-exporter",
    "wave-exporter",
    "prometheus",
    "grafana",
    "loki",
    "nginx",
    "vault",
    "authentik",
    "wave-gateway",
    "rapids",
    "nemo",
    "runai",
    "ai-enterprise",
    "omniverse",
    "clara",
    "deepstream",
    "hpc-sdk",
    "tao",
    "aerial",
    "sionna",
    "openvino-model-server",
    "mlflow",
    "n8n",
}


def test_catalog_holds_the_issue_services_with_sources() -> None:
    catalog = services()
    assert set(catalog) >= ISSUE_SERVICES
    for s in catalog.values():
        assert s.source.startswith(("http", "SPEC")), s.id
        assert s.purpose and s.licence.name


def test_dcgm_excludes_geforce_and_jetson() -> None:
    dcgm = service("dcgm-exporter")
    assert set(dcgm.requires.gpu_classes) == {"datacenter", "workstation"}
    assert any("GeForce" in i.what for i in dcgm.incompatible)


def test_unknown_id_suggests() -> None:
    with pytest.raises(NotFoundError, match="did you mean vllm"):
        service("vlm")


def test_bad_field_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "services.yaml"
    bad.write_text(
        "services:\n"
        "  - id: x\n"
        "    name: X\n"
        "    category: c\n"
        "    purpose: p\n"
        "    licence: {name: MIT, cost: cheap}\n"
        "    source: https://example.org\n"
        "    deploy: {kind: tool}\n"
    )
    with pytest.raises(ConfigError, match=r"services\.yaml:6: licence\.cost"):
        load_services(bad)


def test_unknown_dependency_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "services.yaml"
    bad.write_text(
        "services:\n"
        "  - {id: a, name: A, category: c, purpose: p, licence: {name: MIT, cost: free},\n"
        "     source: https://example.org, deploy: {kind: tool}, depends_on: [prometheus]}\n"
    )
    with pytest.raises(NotFoundError, match="unknown service 'prometheus'"):
        load_services(bad)
