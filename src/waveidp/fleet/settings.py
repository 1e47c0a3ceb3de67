"""One configuration for the gateway: the fleet file's `gateway:` section (`GatewayConfig`), the
`WAVE_*` environment and `wave serve`'s flags all feed the same typed model.

Precedence, highest first: **flag > environment > file > default**. Every field of `GatewayConfig`
has exactly one variable, `WAVE_` + its name in capitals (`redis_url` -> `WAVE_REDIS_URL`),
generated from the model here, so the list cannot drift from it (`wave serve --help` and
docs/configuration.md print `variables()`). Lists are comma-separated; booleans are
true/false/1/0/yes/no.

A few values are never settings of the file: where the file is (`WAVE_CONFIG`), where state is
kept (`WAVE_HOME`), and secrets (`WAVE_API_KEY`, `WAVE_ADMIN_KEY`; the passwords inside
`WAVE_REDIS_URL` and `WAVE_DATABASE_URL`): a URL with a password in the file is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from waveidp.errors import ConfigError, InputError
from waveidp.fleet.models import GatewayConfig

PREFIX = "WAVE_"
# Variables that are not fields of the gateway: section (what each holds).
OUTSIDE_THE_FILE = {
    "WAVE_CONFIG": "the fleet file to read (wave serve --config)",
    "WAVE_HOME": "where keys.db, audit.db, the audit spool and logs live (default ~/.local/share/wave)",
    "WAVE_API_KEY": "the bootstrap API key (secret; else WAVE_HOME/gateway.key)",
    "WAVE_ADMIN_KEY": "the admin key of /admin/keys (secret; or admin_key_file / admin_key_vault)",
    "WAVE_METRICS_KEY": "the key that reads /metrics and /ready with status_auth (secret; Prometheus')",
}
_SECRET_URLS = ("redis_url", "database_url")


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def variables() -> dict[str, str]:
    """Every WAVE_* variable the gateway reads, with what it sets: the model's fields, then the rest."""
    out = {env_name(name): f.description or name for name, f in GatewayConfig.model_fields.items()}
    return {**out, **OUTSIDE_THE_FILE}


def _from_env(name: str, raw: str) -> Any:
    annotation: Any = GatewayConfig.model_fields[name].annotation
    value: Any = raw
    if str(annotation).startswith("list["):
        value = [part.strip() for part in raw.split(",") if part.strip()]
    elif raw == "" and _optional(name):
        return None
    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise ConfigError(f"{problem}, got {raw!r}", where=f"environment {env_name(name)}") from None


def _optional(name: str) -> bool:
    return GatewayConfig.model_fields[name].default is None


def _has_password(url: str | None) -> bool:
    from urllib.parse import urlsplit

    return bool(url) and bool(urlsplit(str(url)).password)


def resolve(
    file: GatewayConfig | None,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
    *,
    file_name: str = "the fleet file",
) -> GatewayConfig:
    """The gateway's configuration: `flags` (only those given: not None) over the `WAVE_*`
    variables of `environ` over the `gateway:` section of the file over the defaults."""
    data: dict[str, Any] = {}
    if file is not None:
        data.update(file.model_dump(exclude_unset=True))
        for name in _SECRET_URLS:
            if _has_password(data.get(name)):
                raise ConfigError(
                    f"gateway.{name} holds a password",
                    where=file_name,
                    fix=f"leave it out of the file and set {env_name(name)} in the environment",
                )
    for name in GatewayConfig.model_fields:
        raw = environ.get(env_name(name))
        if raw is not None:
            data[name] = _from_env(name, raw)
    unknown = set(flags) - set(GatewayConfig.model_fields)
    if unknown:
        raise ValueError(f"not settings: {sorted(unknown)}")
    data.update({k: v for k, v in flags.items() if v is not None and v != []})
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or _field_of(err)
        raise InputError(f"{err['msg'].removeprefix('Value error, ')}", where=f"setting {field}") from None


def _field_of(err: Any) -> str:
    ctx = err.get("ctx") or {}
    loc = getattr(ctx.get("error"), "loc", ())
    return ".".join(str(x) for x in loc) or "gateway"


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """WAVE_* variables that set nothing (a typo would otherwise pass silently). Variables other
    parts of Wave read (`WAVE_MODELS_DIR`, `*_FILE`/`*_VAULT` of secrets, ...) are not the gateway's
    concern, so this only names near misses of the gateway's own."""
    import difflib

    known = set(variables())
    out = []
    for name in environ:
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
            if close:
                out.append(f"{name} (did you mean {close[0]}?)")
    return out


def variables_table() -> str:
    """docs/configuration.md's table of every variable (tests/fleet/test_settings.py keeps it true)."""
    rows = ["| variable | `gateway:` key | default | what |", "|---|---|---|---|"]
    for name, f in GatewayConfig.model_fields.items():
        default = f.default_factory() if f.default_factory is not None else f.default  # type: ignore[call-arg]
        shown = "" if default is None or default == [] else f"`{default}`"
        rows.append(f"| `{env_name(name)}` | `{name}` | {shown} | {f.description or ''} |")
    for name, what in OUTSIDE_THE_FILE.items():
        rows.append(f"| `{name}` | | | {what} |")
    return "\n".join(rows)
