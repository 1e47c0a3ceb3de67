"""Secrets (backend API keys, the admin key) from the environment, a file, or Vault KV v2.

A reference is resolved in this order: `NAME` (environment variable), `NAME_FILE` (a file whose
content, stripped of the trailing newline, is the secret), `NAME_VAULT` (`mount/path#field` in a
Vault or OpenBao KV v2 engine; the client is configured by `VAULT_ADDR` and `VAULT_TOKEN` or
`VAULT_TOKEN_FILE`, optionally `VAULT_NAMESPACE` and `VAULT_CACERT`). Fleet files name where a
secret lives, never its value.

The value travels inside `Secret`, whose `repr`/`str`/format never show it; call `reveal()` at the
one place the plaintext is needed (an outgoing header, a comparison).
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from waveidp.errors import ConfigError


class Secret:
    """A secret value that never prints itself."""

    __slots__ = ("_name", "_value")

    def __init__(self, value: str, *, name: str = "secret") -> None:
        self._value = value
        self._name = name

    def reveal(self) -> str:
        return self._value

    @property
    def name(self) -> str:
        return self._name

    def matches(self, presented: str) -> bool:
        """Constant-time comparison with a presented value."""
        return hmac.compare_digest(presented.encode(), self._value.encode())

    def __repr__(self) -> str:
        return f"Secret({self._name!r}, '**********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self.matches(other._value)

    def __hash__(self) -> int:
        return hash(self._name)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


def read_secret_file(path: str | Path, *, what: str) -> Secret:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} from {p}: {exc.strerror}", fix="check the path and permissions"
        ) from None
    value = text.rstrip("\r\n")
    if not value:
        raise ConfigError(f"{what} file {p} is empty")
    return Secret(value, name=what)


def vault_client(env: Mapping[str, str] | None = None) -> Any:
    """An authenticated hvac client from VAULT_ADDR and VAULT_TOKEN / VAULT_TOKEN_FILE."""
    import hvac

    env = os.environ if env is None else env
    addr = env.get("VAULT_ADDR")
    if not addr:
        raise ConfigError(
            "a Vault reference is configured but VAULT_ADDR is not set",
            fix="export VAULT_ADDR=https://vault.example:8200",
        )
    token = env.get("VAULT_TOKEN")
    if not token and env.get("VAULT_TOKEN_FILE"):
        token = read_secret_file(env["VAULT_TOKEN_FILE"], what="Vault token").reveal()
    if not token:
        raise ConfigError("no Vault token", fix="set VAULT_TOKEN or VAULT_TOKEN_FILE")
    verify: bool | str = env.get("VAULT_CACERT") or True
    return hvac.Client(url=addr, token=token, namespace=env.get("VAULT_NAMESPACE"), verify=verify, timeout=10)


def read_vault_secret(reference: str, *, what: str, client: Any = None) -> Secret:
    """Read `mount/path#field` from a KV v2 engine."""
    import hvac.exceptions
    import requests

    path, sep, field = reference.partition("#")
    mount, slash, sub = path.strip("/").partition("/")
    if not sep or not field or not slash or not sub:
        raise ConfigError(
            f"Vault reference '{reference}' for {what} is malformed",
            fix="write it as mount/path#field, e.g. secret/wave/backends#openai",
        )
    client = client or vault_client()
    try:
        answer = client.secrets.kv.v2.read_secret_version(
            path=sub, mount_point=mount, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        raise ConfigError(f"Vault has no secret at {mount}/{sub} (for {what})") from None
    except hvac.exceptions.Forbidden:
        raise ConfigError(f"the Vault token may not read {mount}/{sub} (for {what})") from None
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise ConfigError(f"Vault request for {what} failed: {type(exc).__name__}") from None
    data = answer.get("data", {}).get("data", {})
    if field not in data:
        raise ConfigError(
            f"Vault secret {mount}/{sub} has no field '{field}' (for {what})",
            fix=f"fields there: {', '.join(sorted(data)) or 'none'}",
        )
    value = data[field]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"Vault field {mount}/{sub}#{field} (for {what}) is empty or not a string")
    return Secret(value, name=what)


def resolve(
    name: str, *, env: Mapping[str, str] | None = None, required: bool = True, vault: Any = None
) -> Secret | None:
    """The secret named by `NAME`, `NAME_FILE` or `NAME_VAULT` in the environment, first found wins."""
    env = os.environ if env is None else env
    what = name
    if env.get(name):
        return Secret(env[name], name=what)
    if env.get(f"{name}_FILE"):
        return read_secret_file(env[f"{name}_FILE"], what=what)
    if env.get(f"{name}_VAULT"):
        return read_vault_secret(env[f"{name}_VAULT"], what=what, client=vault or vault_client(env))
    if required:
        raise ConfigError(f"secret {name} is not configured", fix=f"set {name}, {name}_FILE or {name}_VAULT")
    return None


_URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s@?#]*)@")
_SECRET_QUERY = re.compile(
    r"([?&][^=&#\s]*(?:key|token|secret|password|passwd|auth|sig)[^=&#\s]*=)[^&#\s]*", re.IGNORECASE
)


def redact_urls(text: str) -> str:
    """`text` with the credentials of every URL in it hidden: the password of `user:pass@` (or a
    whole `token@`) and the values of query parameters named like keys, tokens or passwords."""

    def userinfo(m: re.Match[str]) -> str:
        user, sep, _ = m.group(2).partition(":")
        return f"{m.group(1)}{user}:***@" if sep else f"{m.group(1)}***@"

    return _SECRET_QUERY.sub(r"\1***", _URL_USERINFO.sub(userinfo, text))


# The least a secret that opens the gateway must have. Random keys pass by far (`wave keys create`,
# the generated gateway.key, `openssl rand -hex 32`: 64 characters of 16 kinds); what fails is
# what a person types: "admin", "changeme", "x", a character repeated.
MIN_SECRET_CHARS = 32
MIN_SECRET_DISTINCT = 10


def check_strength(secret: Secret) -> Secret:
    """`secret` if it is long and varied enough to open the gateway over a network, else a
    `ConfigError` naming the secret and the rule (never the value)."""
    value = secret.reveal()
    fix = "generate one: openssl rand -hex 32"
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"{secret.name} is too short to be a secret: {len(value)} characters, "
            f"at least {MIN_SECRET_CHARS} are needed",
            fix=fix,
        )
    if len(set(value)) < MIN_SECRET_DISTINCT:
        raise ConfigError(
            f"{secret.name} is too predictable: {len(set(value))} different characters, "
            f"at least {MIN_SECRET_DISTINCT} are needed",
            fix=fix,
        )
    return secret


def resolve_backend_key(
    *,
    env_var: str | None,
    file: str | None,
    vault_ref: str | None,
    backend: str,
    env: Mapping[str, str] | None = None,
    vault: Any = None,
) -> Secret | None:
    """A backend's API key from the fleet file's `api_key_env` / `api_key_file` / `api_key_vault`."""
    env = os.environ if env is None else env
    what = f"API key of backend {backend}"
    if env_var:
        value = env.get(env_var)
        if not value:
            raise ConfigError(f"environment variable {env_var} ({what}) is not set")
        return Secret(value, name=what)
    if file:
        return read_secret_file(file, what=what)
    if vault_ref:
        return read_vault_secret(vault_ref, what=what, client=vault or vault_client(env))
    return None
