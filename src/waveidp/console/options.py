"""What the console is configured with, and the check that keeps it off the network without a key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from waveidp.console.oidc import ConsoleOidc
from waveidp.errors import ConfigError
from waveidp.fleet.models import Fleet, GatewayConfig
from waveidp.security.secrets import Secret
from waveidp.security.transport import is_loopback

PATH = "/console"


@dataclass
class ConsoleOptions:
    """`admin_key`: signs an admin in (the same key as `/admin`). `bootstrap_key`: the key the
    playground and the benchmark page send to `/v1` for an admin (the one `wave up` prints).
    `fleet`: the fleet file, for its nodes and devices. `bench_dir`: where `wave bench` result
    folders are listed and where a bench started from the page writes. `secure_cookie`: None =
    Secure when the request came over TLS; True behind a TLS-terminating proxy."""

    admin_key: Secret | None = None
    bootstrap_key: Secret | None = None
    oidc: ConsoleOidc | None = None
    fleet: Fleet | None = None
    bench_dir: Path | None = None
    sessions_db: Path | None = None
    secure_cookie: bool | None = None
    public_url: str | None = None  # e.g. https://wave.example.org, for the OIDC redirect URI
    recent_requests: int = 2000

    def bench_root(self) -> Path:
        if self.bench_dir is not None:
            return self.bench_dir
        from waveidp.paths import wave_home

        return wave_home() / "bench"


def check_console_bind(host: str, admin_key: Secret | None) -> None:
    """Refuse to serve the console on a non-loopback address without an admin key."""
    if admin_key is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve the console on {host} without an admin key: anyone on the network "
            "could reach its sign-in page with nothing to sign in against",
            fix="set WAVE_ADMIN_KEY (or WAVE_ADMIN_KEY_FILE / WAVE_ADMIN_KEY_VAULT), "
            "pass --no-console, or bind 127.0.0.1",
        )


VENDOR_FILES = ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css", "eventsource-parser.js")


def missing_assets() -> list[str]:
    """The browser libraries `make console-assets` puts into the package that are not there."""
    vendor = Path(__file__).parent / "static" / "vendor"
    return [f for f in VENDOR_FILES if not (vendor / f).is_file()]


def console_options(
    cfg: GatewayConfig, *, admin_key: Secret | None, bootstrap_key: str | None, fleet: Fleet | None = None
) -> ConsoleOptions | None:
    """The console of a gateway of configuration `cfg` (`wave serve`, `wave up`): None, with a
    warning, when the browser libraries are missing from the package; refuses a public bind without
    an admin key. The OIDC client secret (a confidential client) comes from
    WAVE_CONSOLE_OIDC_SECRET[_FILE|_VAULT]; `bootstrap_key` is used only with authentication on."""
    from waveidp.security.secrets import resolve

    check_console_bind(cfg.host, admin_key)
    missing = missing_assets()
    if missing:
        import sys

        print(
            f"warning: serving no console: its browser libraries are missing ({', '.join(missing)}); "
            "run `make console-assets`",
            file=sys.stderr,
        )
        return None
    from waveidp.console.sessions import prepare_sessions

    prepare_sessions()  # here, in the process that starts the workers
    oidc = None
    if cfg.oidc_client_id:
        if not cfg.oidc_issuer:
            raise ConfigError(
                "oidc_client_id (--oidc-client-id) needs oidc_issuer, the issuer the gateway trusts",
                fix="give --oidc-issuer, --oidc-audience and --oidc-jwks-url as well",
            )
        oidc = ConsoleOidc(
            issuer=cfg.oidc_issuer,
            client_id=cfg.oidc_client_id,
            client_secret=resolve("WAVE_CONSOLE_OIDC_SECRET", required=False),
            jwks_url=cfg.oidc_jwks_url,
            admin_value=cfg.oidc_admin_group or "wave-admins",
        )
    return ConsoleOptions(
        admin_key=admin_key,
        bootstrap_key=Secret(bootstrap_key, name="WAVE_API_KEY") if bootstrap_key and cfg.auth else None,
        oidc=oidc,
        fleet=fleet,
        bench_dir=Path(cfg.console_bench_dir) if cfg.console_bench_dir else None,
    )
