"""The service catalog (`data/services.yaml`): typed entries; loader errors name file:line and field.

from waveidp.catalog.services import service, services
service("vllm").requires.min_compute_capability  # "7.0"
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from waveidp.errors import ConfigError, NotFoundError

SERVICES_FILE = Path(__file__).parent / "data" / "services.yaml"

GpuNeed = Literal["none", "nvidia", "intel", "any"]
DeployKind = Literal["engine", "exporter", "infra", "host-package", "tool", "platform", "licence"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirements(_Frozen):
    gpu: GpuNeed = "none"
    min_compute_capability: str | None = Field(default=None, pattern=r"^\d+\.\d+$")
    min_gpu_memory_gib: float | None = Field(default=None, gt=0)
    gpu_classes: tuple[str, ...] = Field(default=(), description="GPU product classes supported; empty = any")
    os: tuple[str, ...] = ("linux",)
    cpu_arch: tuple[str, ...] = ("x86_64", "aarch64")
    kubernetes: bool = False


class Licence(_Frozen):
    name: str
    cost: Literal["free", "free-for-development", "paid"]
    note: str | None = None


class Incompatibility(_Frozen):
    what: str
    why: str


class Deploy(_Frozen):
    kind: DeployKind
    image: str | None = None
    images: dict[str, str] = Field(default_factory=dict, description="variant images: cuda, jetson, ...")
    ports: dict[str, int] = Field(default_factory=dict, description="container ports by name")
    health: str | None = None
    metrics: str | None = None


class Service(_Frozen):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    category: str
    purpose: str
    requires: Requirements = Field(default_factory=Requirements)
    licence: Licence
    depends_on: tuple[str, ...] = ()
    incompatible: tuple[Incompatibility, ...] = ()
    seed_claims: tuple[str, ...] = ()
    source: str = Field(min_length=3)
    deploy: Deploy


def load_services(path: Path) -> dict[str, Service]:
    """Read and validate a services file; every error names `file:line` and the field."""
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"cannot read service catalog: {exc.strerror}", where=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", where=where) from exc
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        raise ConfigError("expected a mapping with a `services:` list", where=f"{path}:1")
    found: dict[str, Service] = {}
    for index, entry in enumerate(data["services"]):
        try:
            svc = Service.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ("services", index, *err["loc"])
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            raise ConfigError(f"{field}: {err['msg']}", where=f"{path}:{_line_of(root, loc)}") from None
        if svc.id in found:
            raise ConfigError(
                f"duplicate service id '{svc.id}'", where=f"{path}:{_line_of(root, ('services', index))}"
            )
        found[svc.id] = svc
    for index, svc in enumerate(found.values()):
        for dep in svc.depends_on:
            if dep not in found:
                where = f"{path}:{_line_of(root, ('services', index, 'depends_on'))}"
                raise NotFoundError("service", dep, found, where=where)
    return found


def _line_of(node: Any, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest YAML node that `loc` reaches."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == part]
            if not match:
                break
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


@functools.cache
def services() -> dict[str, Service]:
    """The built-in catalog, by id (loaded once)."""
    return load_services(SERVICES_FILE)


def service(service_id: str) -> Service:
    """One catalog entry; an unknown id raises NotFoundError with the closest ids."""
    catalog = services()
    try:
        return catalog[service_id]
    except KeyError:
        raise NotFoundError("service", service_id, catalog) from None
