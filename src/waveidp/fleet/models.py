"""The fleet file, `wave.yaml`: nodes, their devices and backends, links, routing and gateway settings.

Every model forbids unknown fields so a typo is an error naming the file, line and field
(see `waveidp.fleet.load`). Device `hardware` ids and backend `model`/`quant` ids refer to the
catalogs; they are checked when the fleet is resolved, not here, so this module stays pure data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from waveidp.catalog._models import Dtype
from waveidp.protocols.routes import ApiRoute

EngineKind = Literal[
    "vllm", "llamacpp", "triton", "nim", "ollama", "openai", "embedded", "trtllm", "transformers", "emulated"
]
RoutingPolicy = Literal["predicted-latency", "least-outstanding", "round-robin"]

_NAME = r"^[a-z0-9][a-z0-9_.-]*$"
_URL_SCHEMES = {
    "redis_url": ("redis://", "rediss://", "unix://"),
    "database_url": ("postgresql://", "postgres://"),
}


class FieldError(ValueError):
    """A cross-field check failed at `loc`, a path relative to the model that raised it.

    Pydantic keeps the exception in the error's `ctx`, so the loader can point at the exact
    line of the offending value instead of the whole node.
    """

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.loc = loc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalibrationPoint(_Strict):
    """One test a calibration measured: a llama-bench row."""

    model: str = Field(description="the model file (path on the node)")
    quant: str
    threads: int = Field(ge=1)
    n_prompt: int = Field(ge=0, description="prompt tokens (a prompt-processing test), else 0")
    n_gen: int = Field(ge=0, description="generated tokens (a generation test), else 0")
    tokens_per_s: float = Field(gt=0)
    timing: Literal["cpu", "wall"] = Field(description="one thread by CPU time, more by the wall clock")
    gpu_layers: int = Field(default=0, ge=0, description="layers on the GPU (-ngl); 0 for a CPU test")


class Calibration(_Strict):
    """Efficiency factors measured on one device (its CPU or a GPU), with when and how
    (`wave fleet detect --calibrate`)."""

    factors: dict[str, float] = Field(description="sizing efficiency fields and their measured values")
    measured_at: str = Field(description="ISO 8601 time of the measurement")
    method: str = Field(description="what ran: tool, its build, models, threads, tests")
    points: int = Field(default=0, ge=0, description="measurements the factors were fitted to")
    error_before: dict[str, float] = Field(
        default_factory=dict, description="median |predicted/measured - 1| per metric with the prior"
    )
    error_after: dict[str, float] = Field(
        default_factory=dict, description="the same with the fitted factors"
    )
    measurements: list[CalibrationPoint] = Field(
        default_factory=list, description="what was measured, so a later prior can be refitted to it"
    )


class Device(_Strict):
    """One physical device on a node, pointing at a hardware catalog id."""

    id: str = Field(pattern=_NAME, description="name of this device on its node, e.g. gpu0, cpu")
    hardware: str = Field(description="hardware catalog id, e.g. rtx-5070-ti, ryzen-9-9900x")
    count: int = Field(default=1, ge=1, le=64, description="identical devices (e.g. 8 GPUs of one HGX board)")
    memory_gib: float | None = Field(default=None, gt=0, description="override: memory actually installed")
    name: str | None = Field(default=None, description="model name as detected (/proc/cpuinfo, NVML)")
    cores: int | None = Field(default=None, ge=1, le=4096, description="physical CPU cores (CPUs only)")
    flags: list[str] = Field(default_factory=list, description="detected CPU features that matter to engines")
    threads: int | None = Field(default=None, ge=1, le=16384, description="logical CPUs (SMT threads)")
    base_ghz: float | None = Field(default=None, gt=0, le=10, description="nominal clock (CPUs)")
    max_ghz: float | None = Field(
        default=None, gt=0, le=10, description="highest clock the OS (CPU) or NVML (GPU SMs) reports"
    )
    l2_kib: int | None = Field(default=None, gt=0, description="L2 cache per core, KiB")
    l3_mib: float | None = Field(default=None, gt=0, description="last-level cache in all, MiB")
    flop_per_cycle: dict[Dtype, float] = Field(
        default_factory=dict,
        description="peak FLOP (int8: OP) per cycle per CPU core (from the detected flags) or per GPU SM "
        "(from the compute capability)",
    )
    compute_capability: str | None = Field(
        default=None, pattern=r"^\d+\.\d+$", description="CUDA compute capability (NVIDIA GPUs, from NVML)"
    )
    sms: int | None = Field(default=None, ge=1, le=4096, description="streaming multiprocessors (GPUs)")
    boost_ghz: float | None = Field(
        default=None, gt=0, le=10, description="the SM clock a GPU's peaks are taken at (its rated boost)"
    )
    memory_bus_bits: int | None = Field(default=None, ge=8, le=16384, description="GPU memory bus width")
    memory_max_mhz: float | None = Field(
        default=None, gt=0, le=100_000, description="GPU memory's highest clock as NVML reports it"
    )
    memory_bandwidth_gb_s: float | None = Field(
        default=None, gt=0, le=100_000, description="streaming read of all cores, measured on the node"
    )
    core_bandwidth_gb_s: float | None = Field(
        default=None, gt=0, le=100_000, description="streaming read of one core, measured on the node"
    )
    calibration: dict[str, Calibration] = Field(
        default_factory=dict,
        description="engine -> factors measured on this device (wave fleet detect --calibrate)",
    )


class ServedModel(_Strict):
    """A model a backend serves: the name clients send, and what it is for sizing."""

    name: str = Field(min_length=1, description="model name as clients send it and the engine knows it")
    model: str | None = Field(default=None, description="catalog id or path used for sizing")
    quant: str | None = None
    context: int | None = Field(default=None, gt=0, le=10_000_000)


class Backend(_Strict):
    """An inference engine reachable over HTTP (or started locally when `embedded`)."""

    name: str = Field(pattern=_NAME)
    engine: EngineKind
    url: str = Field(pattern=r"^https?://", description="OpenAI-compatible base URL, e.g. http://host:8000")
    models: list[ServedModel | str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list, description="ids of this node's devices the engine uses")
    api_key_env: str | None = Field(default=None, description="environment variable holding the backend key")
    api_key_file: str | None = Field(default=None, description="file holding the backend key")
    api_key_vault: str | None = Field(default=None, description="Vault KV v2 path#field holding the key")
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    tensor_parallel: int = Field(default=1, ge=1, le=64)
    port: int | None = Field(default=None, ge=1, le=65535, description="host port when Wave renders it")
    routes: list[ApiRoute] | None = Field(
        default=None,
        description="the API routes it serves beyond chat, completions and embeddings (default: what its "
        "engine kind serves); Responses and Messages are translated to chat completions where absent",
    )

    def served(self) -> list[ServedModel]:
        return [ServedModel(name=m) if isinstance(m, str) else m for m in self.models]


def _exporter_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, e.g. http://gpu-box:9401/metrics, got {url!r}")
    try:
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError:
        raise ValueError(f"has a port out of range, got {url!r}") from None
    if any(c.isspace() for c in url):
        raise ValueError(f"must not contain spaces, got {url!r}")
    return url


ExporterUrl = Annotated[str, AfterValidator(_exporter_url)]


class Lxc(_Strict):
    """A node that is a Proxmox LXC guest: where its GPU passthrough lines go."""

    host: str = Field(description="name of the Proxmox host node")
    vmid: int = Field(ge=100, le=999_999_999)


class Node(_Strict):
    name: str = Field(pattern=_NAME)
    address: str = Field(default="127.0.0.1", description="host name or IP other nodes reach it at")
    role: str | None = None
    os: str = "linux"
    memory_gib: float | None = Field(default=None, gt=0, description="system RAM")
    devices: list[Device] = Field(default_factory=list)
    backends: list[Backend] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list, description="service catalog ids pinned to this node")
    lxc: Lxc | None = None
    kubernetes: bool = False
    exporter: list[ExporterUrl] = Field(
        default_factory=list,
        description="metrics URL(s) of the node's exporters the gateway reads GPU and host telemetry from "
        "(wave exporter, DCGM exporter, node_exporter), e.g. http://gpu-box:9401/metrics",
    )

    @field_validator("exporter", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise ValueError(f"must be a URL or a list of URLs, got {value!r}")
        return value

    models_dir: str | None = Field(
        default=None,
        description="the node's model store (WAVE_MODELS_DIR there): engines mount it at /models",
    )

    @field_validator("models_dir")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"must be an absolute path on the node, e.g. /var/lib/wave/models (not {v!r})")
        return v

    @model_validator(mode="after")
    def _unique_ids(self) -> Node:
        _unique(
            [d.id for d in self.devices], f"device id on node {self.name}", lambda i: ("devices", i, "id")
        )
        _unique(
            [b.name for b in self.backends],
            f"backend name on node {self.name}",
            lambda i: ("backends", i, "name"),
        )
        known = {d.id for d in self.devices}
        for i, b in enumerate(self.backends):
            for j, dev in enumerate(b.devices):
                if dev not in known:
                    have = ", ".join(sorted(known)) or "none"
                    raise FieldError(
                        f"backend {b.name} uses device '{dev}' that node {self.name} does not"
                        f" have (its devices: {have})",
                        ("backends", i, "devices", j),
                    )
        return self


class Link(_Strict):
    a: str
    b: str
    bandwidth_gbps: float = Field(gt=0, le=10_000)
    latency_ms: float = Field(default=0.5, ge=0, le=10_000)


class Slo(_Strict):
    """The latency a request of one model must meet to count as served well (docs/routing.md)."""

    ttft_s: float | None = Field(default=None, gt=0, le=3600, description="seconds to the first token")
    itl_s: float | None = Field(default=None, gt=0, le=60, description="seconds per output token after it")

    @model_validator(mode="after")
    def _something(self) -> Slo:
        if self.ttft_s is None and self.itl_s is None:
            raise FieldError("an slo needs ttft_s, itl_s or both", ())
        return self


_SHED_AFTER = (
    "predicted-latency refuses (503 overloaded, Retry-After) a request forecast to wait longer for its"
    " first token on every backend (default: the gateway's first_token_timeout_s)"
)


class ModelRouting(_Strict):
    policy: RoutingPolicy = "predicted-latency"
    affinity: bool = Field(
        default=True, description="keep a session/prefix on one backend with a prefix cache"
    )
    slo: Slo | None = Field(
        default=None, description="predicted-latency prefers backends predicted to meet it"
    )
    shed_after_s: float | None = Field(default=None, gt=0, le=3600, description=_SHED_AFTER)


class RoutingConfig(_Strict):
    default_policy: RoutingPolicy = "predicted-latency"
    models: dict[str, ModelRouting] = Field(default_factory=dict)

    def policy_for(self, model: str) -> RoutingPolicy:
        m = self.models.get(model)
        return m.policy if m else self.default_policy

    def with_policy(self, policy: str) -> RoutingConfig:
        """`policy` for every model; each model's affinity and SLO stay as they are."""
        data = self.model_dump()
        data["default_policy"] = policy
        for m in data["models"].values():
            m["policy"] = policy
        return RoutingConfig.model_validate(data)


class GatewayConfig(_Strict):
    node: str | None = Field(default=None, description="node that runs the gateway")
    host: str = Field(default="127.0.0.1", description="listen address (another needs auth on)")
    port: int = Field(default=4000, ge=1, le=65535, description="listen port")
    # 32 MiB: a two-turn chat with four 12 MP phone photos as data URLs, as Open WebUI sends it, is
    # ~18-30 MiB (benchmarks/multimodal_body.py); 4 MiB refused one photo.
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, le=1024**3, description="largest request body accepted (413)"
    )
    connect_timeout_s: float = Field(default=3.0, gt=0, le=600, description="connecting to a backend")
    first_token_timeout_s: float = Field(
        default=120.0, gt=0, le=3600, description="a backend's first byte of answer"
    )
    chunk_gap_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="between two chunks of a stream"
    )
    total_timeout_s: float = Field(default=900.0, gt=0, le=86_400, description="a whole request")
    retries: int = Field(
        default=2, ge=0, le=10, description="other backends tried before the first byte (502/504 after)"
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="gateway processes on the port (wave serve --workers)"
    )
    max_json_containers: int = Field(
        default=20_000,
        ge=100,
        le=10_000_000,
        description="arrays and objects in one JSON body (400 json_too_complex): parsing costs per container",
    )
    # What one client may cost before the application runs (docs/security.md, Transport).
    max_header_bytes: int = Field(
        default=32 * 1024, ge=1024, le=1024**2, description="request line and headers, in bytes (431)"
    )
    max_headers: int = Field(default=100, ge=8, le=10_000, description="headers in one request (431)")
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=3600, description="a request head must arrive within this (408)"
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, le=86_400, description="a request body must arrive within this (408)"
    )
    write_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="a client that reads none of its answer this long is cut off",
    )
    max_connections_per_client: int = Field(
        default=256, ge=1, le=1_000_000, description="open connections from one address, per worker (429)"
    )
    refused_body_bytes_per_minute: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        le=1024**4,
        description="bytes of refused request bodies read and dropped per client a minute, so that a "
        "client still sending reads the answer; beyond, the connection closes after it",
    )
    refused_audit_rows_per_minute: int = Field(
        default=600,
        ge=1,
        le=1_000_000,
        description="audit rows of refused requests per client address a minute, per worker; beyond, "
        "refusals are only counted",
    )
    uncapped_addresses: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="addresses or networks max_connections_per_client leaves alone (a local reverse proxy)",
    )

    @model_validator(mode="after")
    def _networks(self) -> GatewayConfig:
        import ipaddress

        for i, v in enumerate(self.uncapped_addresses):
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise FieldError(
                    f"'{v}' is not an IP address or network", ("uncapped_addresses", i)
                ) from None
        return self

    status_auth: bool = Field(
        default=False,
        description="/metrics needs a key (WAVE_METRICS_KEY or any API key); /ready without one shows "
        "only its status",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="browser origins allowed to call the gateway (CORS), e.g. http://localhost:3000; "
        "'*' for any; empty: CORS off",
    )
    telemetry_interval_s: float = Field(
        default=5.0, ge=0.2, le=3600, description="how often the gateway reads the nodes' exporters"
    )
    # --- everything else a gateway process needs; each setting is also a WAVE_* variable and, where
    # `wave serve` has one, a flag (waveidp.fleet.settings: flag > environment > file > default)
    upstreams: list[str] = Field(
        default_factory=list,
        description="OpenAI-compatible base URLs served beside the fleet file's backends (--upstream)",
    )
    upstream_engine: str = Field(
        default="auto", description="engine kind of the upstreams (auto: detected from /metrics)"
    )
    upstream_key_env: str | None = Field(
        default=None, description="environment variable holding the upstreams' API key"
    )
    policy: RoutingPolicy | None = Field(
        default=None, description="routing policy for every model, over the routing: section"
    )
    auth: bool = Field(default=True, description="API keys needed (false: --no-auth, refused off loopback)")
    redis_url: str | None = Field(
        default=None, description="Redis shared by the replicas for rate limits (password: environment only)"
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL shared by the replicas for keys and the audit log; unset: SQLite in "
        "WAVE_HOME (password: environment only)",
    )
    oidc_issuer: str | None = Field(default=None, description="accept OIDC tokens from this issuer (iss)")
    oidc_audience: str | None = Field(default=None, description="audience (aud) the OIDC tokens must carry")
    oidc_jwks_url: str | None = Field(default=None, description="the issuer's JWKS URL")
    console: bool = Field(default=True, description="serve the web console at /console")
    oidc_client_id: str | None = Field(
        default=None, description="console sign-in through the OIDC issuer (code + PKCE) as this client"
    )
    oidc_admin_group: str | None = Field(
        default=None, description="OIDC group (claim 'groups') whose members are console admins (wave-admins)"
    )
    console_bench_dir: str | None = Field(
        default=None, description="wave bench result folders the console lists (default WAVE_HOME/bench)"
    )
    admin_key_file: str | None = Field(
        default=None, description="file holding the admin key of /admin/keys (or WAVE_ADMIN_KEY itself)"
    )
    admin_key_vault: str | None = Field(
        default=None, description="Vault KV v2 mount/path#field holding the admin key"
    )
    audit: bool = Field(default=True, description="write the hash-chained audit log")
    log_prompts: bool = Field(default=False, description="keep prompt text in the audit log")
    audit_spool_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        le=1024**4,
        description="local spool for audit rows while the database is down; full: requests get 503",
    )
    redis_down_rpm: Literal["open", "closed"] = Field(
        default="open", description="requests per minute while Redis is down: let through or refuse (503)"
    )
    redis_down_tpm: Literal["open", "closed"] = Field(
        default="closed", description="tokens per minute (a budget) while Redis is down"
    )
    redis_down_concurrency: Literal["open", "closed"] = Field(
        default="open", description="concurrent requests per key while Redis is down"
    )
    tls_cert: str | None = Field(default=None, description="TLS certificate (PEM); needs tls_key")
    tls_key: str | None = Field(default=None, description="TLS private key (PEM)")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="warning", description="debug shows each routing decision"
    )

    @model_validator(mode="after")
    def _together(self) -> GatewayConfig:
        oidc = {"oidc_issuer": self.oidc_issuer, "oidc_audience": self.oidc_audience}
        oidc["oidc_jwks_url"] = self.oidc_jwks_url
        if any(oidc.values()) and not all(oidc.values()):
            missing = next(k for k, v in oidc.items() if not v)
            raise FieldError("OIDC needs oidc_issuer, oidc_audience and oidc_jwks_url together", (missing,))
        if (self.tls_cert is None) != (self.tls_key is None):
            raise FieldError("TLS needs tls_cert and tls_key together", ("tls_key",))
        for name in ("redis_url", "database_url"):
            url = getattr(self, name)
            if url is not None and not url.startswith(_URL_SCHEMES[name]):
                want = " or ".join(_URL_SCHEMES[name])
                raise FieldError(f"{name} must start with {want}", (name,))
        return self


class Fleet(_Strict):
    version: Literal[1] = 1
    name: str = "wave"
    nodes: list[Node] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)

    @model_validator(mode="after")
    def _consistent(self) -> Fleet:
        _unique([n.name for n in self.nodes], "node name", lambda i: ("nodes", i, "name"))
        where = [(i, j) for i, n in enumerate(self.nodes) for j in range(len(n.backends))]
        _unique(
            [b.name for n in self.nodes for b in n.backends],
            "backend name",
            lambda k: ("nodes", where[k][0], "backends", where[k][1], "name"),
        )
        names = {n.name for n in self.nodes}
        for i, link in enumerate(self.links):
            for end_field, end in (("a", link.a), ("b", link.b)):
                if end not in names:
                    known = ", ".join(sorted(names)) or "none"
                    raise FieldError(
                        f"link end '{end}' is not a node (nodes: {known})", ("links", i, end_field)
                    )
        if self.gateway.node and self.gateway.node not in names:
            raise FieldError(f"gateway.node '{self.gateway.node}' is not a node", ("gateway", "node"))
        return self

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def backends(self) -> list[tuple[Node, Backend]]:
        return [(n, b) for n in self.nodes for b in n.backends]


def _unique(values: list[str], what: str, loc: Callable[[int], tuple[str | int, ...]]) -> None:
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise FieldError(f"duplicate {what} '{v}'", loc(i))
        seen.add(v)
